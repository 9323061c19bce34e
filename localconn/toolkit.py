"""Where the CUDA toolkit is: ``CUDA_HOME`` from where ``nvcc`` really lives.

Imports nothing but the standard library: ``setup.py`` loads this file by path (before
PyTorch is importable), and the ``LOCALCONN_JIT=1`` build (:mod:`localconn.cuda_backend`)
calls it before ``torch.utils.cpp_extension`` guesses.

Example::

    >>> set_cuda_home_from_nvcc() in (None, True, False)
    True
    >>> arch_codes("8.0;9.0+PTX")
    '80_90'
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional


def set_cuda_home_from_nvcc() -> Optional[bool]:
    """Set ``CUDA_HOME`` to the toolkit that ``nvcc`` reports (its ``TOP``), if unset.

    PyTorch guesses the toolkit as the parent of nvcc's directory, which is wrong when
    ``nvcc`` on the PATH is a wrapper script (e.g. /usr/local/bin/nvcc running
    /usr/local/cuda-13.0/bin/nvcc). Returns True if it set it, False if nvcc named no
    toolkit, None if there was nothing to do (already set, or no nvcc).
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or not shutil.which("nvcc"):
        return None
    try:
        out = subprocess.run(["nvcc", "-v", "-x", "cu", "-E", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return False
    for line in out.splitlines():
        if line.startswith("#$ TOP="):
            top = Path(line.split("=", 1)[1].strip()).resolve()
            if (top / "include" / "cuda_runtime.h").exists() or list(
                top.glob("targets/*/include/cuda_runtime.h")
            ):
                os.environ["CUDA_HOME"] = str(top)
                return True
            return False
    return False


def arch_codes(archs: str) -> str:
    """``TORCH_CUDA_ARCH_LIST``'s architectures as the extension's ``build_info`` codes:
    ``"8.0;9.0+PTX"`` -> ``"80_90"``."""
    codes = set()
    for a in archs.replace(" ", ";").split(";"):
        a = a.replace("+PTX", "").strip()
        if a.replace(".", "").isdigit():
            codes.add(a.replace(".", ""))
    return "_".join(sorted(codes, key=int))
