"""The package as a stranger gets it: one version, a license, typing marker, and a source
distribution that holds what building and testing need (csrc/ and its emulators, the
Triton kernels, tests, benchmarks, the cost model, the CI scripts, the Makefile)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import localconn

ROOT = Path(__file__).resolve().parent.parent


def test_one_version() -> None:
    setup_py = (ROOT / "setup.py").read_text()
    assert '"0.' not in re.sub(r"#.*", "", setup_py.split("setup(")[1]), "a version in setup()"
    out = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={"LOCALCONN_BUILD_CUDA": "0",
                                                              "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == localconn.__version__


def test_license_and_typing_marker() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (Path(localconn.__file__).parent / "py.typed").exists()


def test_sdist_holds_what_the_tests_need(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True,
                   env={"LOCALCONN_BUILD_CUDA": "0", "PATH": "/usr/bin:/bin"})
    (sdist,) = tmp_path.glob("localconn-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for required in ("LICENSE", "Makefile", "setup.py", "pyproject.toml", "localconn/py.typed",
                     "csrc/binding.cpp", "csrc/conn.cu", "csrc/emulate/emulator.cpp",
                     "triton_kernels/attention.py", "tests/test_cuda.py",
                     "tests/cuda_emulator.py", "benchmarks/kernel_times.py",
                     "perfmodel/predict.py", ".ci/run", ".ci/gpu-check", ".ci/sdist-check",
                     "docs/design.md"):
        assert required in names, required
    headers = {n for n in names if n.startswith("csrc/") and n.endswith((".cuh", ".h"))}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*")
               if p.suffix in (".cuh", ".h")}
    assert headers == on_disk
    assert not [n for n in names if n.startswith("build/") or "__pycache__" in n]


def test_design_references_resolve() -> None:
    """Every "docs/design.md section N" in the sources names a section of docs/design.md,
    and nothing points to the old top-level design file, which is not in the repository."""
    design = (ROOT / "docs" / "design.md").read_text()
    sections = {int(m) for m in re.findall(r"^## (\d+)\.", design, re.M)}
    assert sections == set(range(1, 9))
    cited = set()
    for folder in ("localconn", "triton_kernels", "csrc", "benchmarks", "tests", "perfmodel"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".cuh", ".h", ".cu", ".cpp") or "results" in path.parts:
                continue
            text = path.read_text()
            assert "DESIGN" + ".md" not in text, path
            cited |= {int(n) for n in re.findall(r"docs/design\.md,? sections? (\d+)", text)}
    assert cited and cited <= sections, cited - sections


def test_missing_extension_on_a_cuda_machine_warns_once(monkeypatch) -> None:
    """`pip install .` (build isolation) leaves the CUDA extension out without a word unless
    -v; on a machine with a CUDA device the first availability check says so, once, with the
    command that builds it; without a device, or with LOCALCONN_BUILD_CUDA=0, it is quiet."""
    import warnings

    import pytest
    import torch

    from localconn import cuda_backend

    monkeypatch.setattr(cuda_backend, "_extension", [ImportError("No module named 'localconn._C'")])
    monkeypatch.setattr(cuda_backend, "_warned_unbuilt", [])
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.delenv("LOCALCONN_BUILD_CUDA", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "not importable" in cuda_backend.available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.warns(RuntimeWarning, match="--no-build-isolation"):
        assert "not importable" in cuda_backend.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cuda_backend.available()  # (once)
    monkeypatch.setattr(cuda_backend, "_warned_unbuilt", [])
    monkeypatch.setenv("LOCALCONN_BUILD_CUDA", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cuda_backend.available()


def test_makefile_uses_a_project_venv_where_installs_are_refused() -> None:
    """PEP 668 (or LOCALCONN_VENV=1): make's commands go through .venv, made with
    --system-site-packages; an explicit PYTHON is used as given (make -n: nothing runs)."""
    import os
    import shutil

    import pytest

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS", "MAKELEVEL")}

    def dry(**extra: str) -> str:
        return subprocess.run(["make", "-n", "deps"], cwd=ROOT, check=True, capture_output=True,
                              text=True, env={**env, **extra}).stdout

    venv = dry(LOCALCONN_VENV="1")
    assert "-m venv --system-site-packages .venv" in venv
    assert '.venv/bin/python -c "import torch"' in venv
    assert ".venv" not in dry(LOCALCONN_VENV="1", PYTHON=sys.executable)


def test_every_cuda_kernel_is_described() -> None:
    """docs/kernels.md names every kernel the CUDA backend can launch (cuda_args.KERNEL_NAMES)."""
    from localconn.cuda_args import KERNEL_NAMES

    doc = (ROOT / "docs" / "kernels.md").read_text()
    assert not [k for k in KERNEL_NAMES if f"`{k}`" not in doc]


def test_jit_build_says_why_it_cannot(monkeypatch) -> None:
    """LOCALCONN_JIT=1 where no built library loads: the JIT build is tried, and where it
    cannot run the backend's reason names both failures (here: a PyTorch without CUDA, or
    no toolkit). The successful build needs a CUDA toolkit and PyTorch: the GPU check."""
    import pytest
    import torch

    from localconn import cuda_backend

    beside = Path(cuda_backend.__file__).resolve().parent.parent / "csrc"
    # (a source tree or an editable install has csrc/ beside the package; an installed one
    # has none: .ci/sdist-check runs this test against the installed package)
    assert cuda_backend.jit_sources() == (beside if (beside / "binding.cpp").exists() else None)
    monkeypatch.setenv("LOCALCONN_JIT", "1")
    monkeypatch.delenv("LOCALCONN_EXTENSION", raising=False)
    monkeypatch.setattr(cuda_backend, "_warned_unbuilt", [True])
    if torch.version.cuda is None:
        monkeypatch.setattr(cuda_backend, "_extension", [])
        assert cuda_backend.extension() is None
        assert "JIT build failed: LOCALCONN_JIT=1 needs a PyTorch built with CUDA" in str(
            cuda_backend._extension[0])
    from torch.utils import cpp_extension

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(cuda_backend, "set_cuda_home_from_nvcc", lambda: None)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    monkeypatch.setattr(cuda_backend, "_extension", [])
    with pytest.raises(ImportError, match="CUDA toolkit"):
        cuda_backend.jit_build()
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", "/usr/local/cuda")
    monkeypatch.setattr(cuda_backend, "jit_sources", lambda: None)
    with pytest.raises(ImportError, match="csrc/ sources"):
        cuda_backend.jit_build()


SITECUSTOMIZE = """
import sysconfig
_get_path = sysconfig.get_path

def get_path(name, *args, **kwargs):  # the stdlib of a distribution's Python (PEP 668)
    return {stdlib!r} if name == "stdlib" else _get_path(name, *args, **kwargs)

sysconfig.get_path = get_path
"""


def test_makefile_detects_an_externally_managed_python(tmp_path: Path) -> None:
    """A Python whose stdlib holds an EXTERNALLY-MANAGED marker (PEP 668; emulated: its
    sysconfig's stdlib path is moved to a folder with the marker, so pip refuses installs
    there as on a Debian/Ubuntu system Python) makes make use the project venv; the same
    Python without the marker does not. make -n: nothing is installed."""
    import os
    import shutil

    import pytest

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    base = getattr(sys, "_base_executable", sys.executable)  # (outside any venv)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHON", "MAKEFLAGS", "MAKELEVEL", "LOCALCONN_VENV", "VIRTUAL_ENV")}

    def system_python(managed: bool) -> Path:
        root = tmp_path / ("managed" if managed else "plain")
        (root / "stdlib").mkdir(parents=True)
        if managed:
            (root / "stdlib" / "EXTERNALLY-MANAGED").write_text(
                "[externally-managed]\nError=use a venv\n")
        (root / "site").mkdir()
        (root / "site" / "sitecustomize.py").write_text(
            SITECUSTOMIZE.format(stdlib=str(root / "stdlib")))
        wrapper = root / "python3"
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{root / "site"}" exec "{base}" "$@"\n')
        wrapper.chmod(0o755)
        return wrapper

    def dry(python: Path) -> str:
        return subprocess.run(["make", "-n", "deps", f"SYS_PYTHON={python}"], cwd=ROOT,
                              check=True, capture_output=True, text=True, env=env).stdout

    managed = system_python(True)
    out = dry(managed)
    assert f"{managed} -m venv --system-site-packages .venv" in out, out
    assert '.venv/bin/python -c "import torch"' in out
    assert ".venv" not in dry(system_python(False))
    # the emulation is what pip sees too: it refuses to install into that Python
    pip = subprocess.run([str(managed), "-m", "pip", "install", "--dry-run", "--no-index",
                          "nothing-at-all"], capture_output=True, text=True, env=env)
    if "No module named pip" not in pip.stderr:
        assert pip.returncode != 0 and "externally-managed-environment" in pip.stderr, pip.stderr
