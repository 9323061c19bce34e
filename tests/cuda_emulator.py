"""The CUDA kernels of csrc/ on the CPU: build and call ``csrc/emulate/emulator.cpp``.

The emulator compiles the very kernel bodies, plans and dispatch of csrc/
with the system C++ compiler and runs each block's threads as fibers
(barriers and shared memory behave as on the GPU; shared memory starts as
NaN). :class:`Emulator` offers the three primitives with the signatures of
a localconn backend, allocating outputs through
:mod:`localconn.cuda_backend` (the code path the GPU uses) and passing the
same argument lists (:mod:`localconn.cuda_args`) through ctypes.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import torch

from localconn import cuda_backend
from localconn.cuda_args import KERNEL_NAMES
from localconn.geometry import Geometry

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
BUILD = ROOT / "build" / "cuda-emulator"


def compiler() -> Optional[str]:
    """The C++ compiler to build with (``CXX``, else c++ / g++ / clang++), or None."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def build() -> Path:
    """Compile the emulator (cached by a hash of csrc/); return the shared library."""
    sources = sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cuh", ".cpp"))
    digest = hashlib.sha256()
    for p in sources:
        digest.update(p.name.encode() + p.read_bytes())
    lib = BUILD / f"emulator-{digest.hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    BUILD.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, "-std=c++17", "-O1", "-g", "-shared", "-fPIC", "-Wl,-z,defs", "-Wall", "-Werror",
           "-Wno-unknown-pragmas", str(CSRC / "emulate" / "emulator.cpp"), "-o", str(tmp)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    tmp.replace(lib)
    return lib


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class Emulator:
    """A localconn backend (CPU tensors) running csrc/'s kernels in the emulator.

    ``kernels`` records the name of every kernel that ran (csrc/plan.h).
    """

    def __init__(self, lib: Path) -> None:
        self.lib = ctypes.CDLL(str(lib))
        i64p, vp, i32p = ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p, ctypes.POINTER(
            ctypes.c_int32)
        self.lib.lc_emu_conn2d.argtypes = [i64p, vp, vp, vp, vp, i32p]
        self.lib.lc_emu_conn2d_transpose.argtypes = [i64p, vp, vp, vp, i32p]
        self.lib.lc_emu_corr2d.argtypes = [i64p, vp, vp, vp, ctypes.c_int64, i32p]
        self.lib.lc_emu_error.restype = ctypes.c_char_p
        self.kernels: list[str] = []

    def plan_for_sms(self, sm_count: int) -> None:
        """Plan corr2d's work split for ``sm_count`` multiprocessors (1: the default;
        132: an H100/H200's plan), running every block as always."""
        self.lib.lc_emu_set_mode.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        self.lib.lc_emu_set_mode(0, 2, sm_count)

    def planes_budget(self, nbytes: int) -> None:
        """Cut conn2d's route through planes (csrc/plan.h plan_planes) into chunks of
        samples whose workspace fits ``nbytes`` (0: the plan's own limit)."""
        self.lib.lc_emu_set_planes_budget.argtypes = [ctypes.c_int64]
        self.lib.lc_emu_set_planes_budget(nbytes)

    def rare_paths(self) -> int:
        """The lanes that entered a kernel's rare branch (csrc/portable.h LC_RARE_PATH: a
        fallback for Inf / NaN, which gives the right answer but must not run on finite
        data) since the last call."""
        self.lib.lc_emu_rare_paths.restype = ctypes.c_int64
        return int(self.lib.lc_emu_rare_paths())

    def smem_optin(self, nbytes: int) -> None:
        """Plan as on a device whose blocks may opt in to ``nbytes`` of shared memory
        (csrc/params.h ConnArgs::smem_optin; 0, the default: plan.h's kMaxSmemOptIn, as
        on every GPU with mma.sync; 227 KB: sm_90)."""
        self.lib.lc_emu_set_smem_optin.argtypes = [ctypes.c_int64]
        self.lib.lc_emu_set_smem_optin(nbytes)

    def _check(self, rc: int, chosen: ctypes.c_int32, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what}: status {rc} {self.lib.lc_emu_error().decode()}")
        self.kernels.append(KERNEL_NAMES[chosen.value])

    @staticmethod
    def _meta(meta: list[int]) -> ctypes.Array:
        return (ctypes.c_int64 * len(meta))(*meta)

    def _run_conn(self, x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor],
                  y: torch.Tensor, meta: list[int]) -> None:
        chosen = ctypes.c_int32(-1)
        rc = self.lib.lc_emu_conn2d(self._meta(meta), _ptr(x), _ptr(w), _ptr(bias), _ptr(y),
                                    ctypes.byref(chosen))
        self._check(rc, chosen, "conn2d")

    def _run_transpose(self, g: torch.Tensor, w: torch.Tensor, out: torch.Tensor,
                       meta: list[int]) -> None:
        chosen = ctypes.c_int32(-1)
        rc = self.lib.lc_emu_conn2d_transpose(self._meta(meta), _ptr(g), _ptr(w), _ptr(out),
                                              ctypes.byref(chosen))
        self._check(rc, chosen, "conn2d_transpose")

    def _run_corr(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, meta: list[int],
                  force_splits: int) -> None:
        chosen = ctypes.c_int32(-1)
        rc = self.lib.lc_emu_corr2d(self._meta(meta), _ptr(a), _ptr(b), _ptr(out),
                                    force_splits, ctypes.byref(chosen))
        self._check(rc, chosen, "corr2d")

    # the backend signatures (localconn.backends.Backend)
    def conn2d(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
               geo: Geometry) -> torch.Tensor:
        return cuda_backend.conn2d(x, weight, bias, geo, run=self._run_conn)

    def conn2d_transpose(self, g: torch.Tensor, weight: torch.Tensor,
                         geo: Geometry) -> torch.Tensor:
        return cuda_backend.conn2d_transpose(g, weight, geo, run=self._run_transpose)

    def corr2d(self, a: torch.Tensor, b: torch.Tensor, weight_shape: tuple[int, ...],
               geo: Geometry) -> torch.Tensor:
        return cuda_backend.corr2d(a, b, weight_shape, geo, run=self._run_corr)
