"""The command-line tools the model runs: a C++ compiler, nvcc, nvdisasm, cuobjdump.

``nvdisasm`` and ``cuobjdump`` come from Triton's wheel (``triton/backends/
nvidia/bin``) when the CUDA toolkit here has none (the CPU machines carry
only nvcc); nvcc is looked up on the PATH, then ``CUDA_HOME``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


def compiler() -> str:
    """The C++ compiler for the emulator (``CXX``, else g++ / c++); it must be GCC-compatible."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return name
    raise RuntimeError("no C++ compiler found (set CXX): the cost model builds the emulator")


@cache
def nvcc() -> Optional[str]:
    """nvcc from the PATH or ``CUDA_HOME``, or None."""
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and (Path(home) / "bin" / "nvcc").exists():
        return str(Path(home) / "bin" / "nvcc")
    return None


@cache
def nvidia_tool(name: str) -> str:
    """``nvdisasm`` or ``cuobjdump``: the CUDA toolkit's, else Triton's bundled copy."""
    found = shutil.which(name)
    if found:
        return found
    n = nvcc()
    if n and (Path(n).resolve().parent / name).exists():
        return str(Path(n).resolve().parent / name)
    try:
        import triton

        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    raise RuntimeError(f"{name} not found (install the CUDA toolkit or triton)")


@cache
def version(tool: str) -> str:
    """The last line of ``tool --version`` (recorded beside the model's results)."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    lines = [x for x in out.splitlines() if x.strip()]
    return lines[-1].strip() if lines else "unknown"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole (another process, e.g. CI's other lane or a test worker, may
    read it meanwhile): a per-process temporary file, then an atomic rename."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
