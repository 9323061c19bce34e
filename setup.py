"""Build script for localconn.

The package is pure Python on a machine without CUDA; compiled backends
plug into ``localconn.backends`` when present:

* ``triton_kernels/`` is installed as ``localconn.triton_kernels``;
* ``csrc/cpu/`` is compiled into the extension ``localconn._cpu`` (the ``cpu``
  backend) on any machine with PyTorch and a C++ compiler (``LOCALCONN_BUILD_CPU=0``
  skips it, ``=1`` fails loudly if it cannot be built); its kernels are compiled once
  per instruction set (baseline, AVX2, AVX-512) and chosen at run time;
* ``csrc/`` is compiled into the extension ``localconn._C`` (the ``cuda``
  backend) with ``torch.utils.cpp_extension`` and ninja when PyTorch has
  CUDA and a CUDA toolkit is found. ``LOCALCONN_BUILD_CUDA=0`` skips it,
  ``LOCALCONN_BUILD_CUDA=1`` forces it (and fails loudly if it cannot be
  built). Architectures come from ``TORCH_CUDA_ARCH_LIST`` (default
  ``8.0;9.0+PTX``: A100 and H100, PTX for newer GPUs).

Install for development with ``pip install -e . --no-build-isolation``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
DEFAULT_ARCHS = "8.0;9.0+PTX"


def _toolkit() -> Any:
    """localconn/toolkit.py (the CUDA toolkit and architecture helpers), loaded by path:
    the package itself imports PyTorch."""
    spec = importlib.util.spec_from_file_location("localconn_toolkit",
                                                  ROOT / "localconn" / "toolkit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOLKIT = _toolkit()


def cuda_extension() -> tuple[list, dict]:
    """``(ext_modules, cmdclass)`` for ``localconn._C``, or empty if it is not built."""
    flag = os.environ.get("LOCALCONN_BUILD_CUDA", "")
    if flag == "0":
        print("localconn: LOCALCONN_BUILD_CUDA=0, not building the CUDA extension")
        return [], {}
    TOOLKIT.set_cuda_home_from_nvcc()
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError as e:
        why = f"PyTorch is not importable ({e})"
    else:
        why = ""
        if torch.version.cuda is None:
            why = "this PyTorch has no CUDA (torch.version.cuda is None)"
        elif CUDA_HOME is None:
            why = "no CUDA toolkit found (put nvcc on the PATH or set CUDA_HOME)"
    if why:
        if flag == "1":
            raise SystemExit(f"localconn: LOCALCONN_BUILD_CUDA=1 but {why}")
        print(f"localconn: not building the CUDA extension: {why}")
        return [], {}
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or DEFAULT_ARCHS
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    sources = ["csrc/binding.cpp", "csrc/conn.cu", "csrc/conn_transpose.cu", "csrc/corr.cu"]
    ext = CUDAExtension(
        "localconn._C",
        sources=sources,
        include_dirs=[str(CSRC)],
        extra_compile_args={
            "cxx": ["-O3", f"-DLOCALCONN_ARCHS={TOOLKIT.arch_codes(archs)}"],
            "nvcc": ["-O3", "-std=c++17", "-lineinfo", "--threads=4"],
        },
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


CPU_SOURCES = ["csrc/cpu/binding.cpp", "csrc/cpu/attention_binding.cpp",
               "csrc/cpu/kernels_default.cpp", "csrc/cpu/kernels_avx2.cpp",
               "csrc/cpu/kernels_avx512.cpp"]


def cpu_extension() -> list:
    """``[localconn._cpu]``, or empty if it is not built (no PyTorch, or LOCALCONN_BUILD_CPU=0)."""
    flag = os.environ.get("LOCALCONN_BUILD_CPU", "")
    if flag == "0":
        print("localconn: LOCALCONN_BUILD_CPU=0, not building the CPU extension")
        return []
    try:
        from torch.utils.cpp_extension import CppExtension
    except ImportError as e:
        why = f"PyTorch is not importable ({e})"
        if flag == "1":
            raise SystemExit(f"localconn: LOCALCONN_BUILD_CPU=1 but {why}") from e
        print(f"localconn: not building the CPU extension: {why}")
        return []
    omp = openmp_flags()
    return [CppExtension("localconn._cpu", sources=CPU_SOURCES, include_dirs=[str(CSRC)],
                         # -g0: no debug info (Python's CFLAGS add -g: a 113 MB library, +30% build)
                         extra_compile_args=["-O3", "-g0", *omp], extra_link_args=omp)]


def openmp_flags() -> list[str]:
    """``["-fopenmp"]`` when PyTorch's ATen runs ``at::parallel_for`` on OpenMP (Linux
    wheels): that function is inline in ATen's headers, and compiled without OpenMP it
    runs every loop on one thread. The library it links is PyTorch's own libgomp (the
    same soname, already loaded). Empty for ATen's native thread pool (out of line)."""
    import torch

    if "parallel backend: OpenMP" in torch.__config__.parallel_info() and os.name == "posix":
        return ["-fopenmp"]
    return []


ext_modules, cmdclass = cuda_extension()
ext_modules = cpu_extension() + ext_modules
if ext_modules and not cmdclass:
    from torch.utils.cpp_extension import BuildExtension

    cmdclass = {"build_ext": BuildExtension.with_options(use_ninja=True)}


def _version() -> str:
    """localconn/version.py's ``__version__`` (read, not imported: no torch needed)."""
    text = (Path(__file__).parent / "localconn" / "version.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


setup(
    name="localconn",
    version=_version(),
    license="MIT",
    package_data={"localconn": ["py.typed"]},
    description="Fast channel-wise locally-connected layers: depth-wise conv, "
    "dynamic depth-wise conv, involution and local attention in one operator",
    packages=find_packages(include=["localconn", "localconn.*"]) + ["localconn.triton_kernels"],
    package_dir={"localconn.triton_kernels": "triton_kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
    extras_require={
        "test": ["pytest", "pytest-xdist", "hypothesis", "pytest-benchmark", "scipy", "onnx",
                 "onnxscript", "onnxruntime", "fvcore", "thop", "ptflops", "build", "tabulate"],
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "bench": ["tqdm", "matplotlib", "tabulate"],
        "dev": ["pytest", "pytest-xdist", "hypothesis", "pytest-benchmark", "scipy", "ruff", "tqdm",
                "matplotlib", "tabulate", "onnx", "onnxscript", "onnxruntime"],
    },
)
