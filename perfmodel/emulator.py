"""The CUDA backend's real plans and memory-access patterns, from the CPU emulator.

csrc/emulate/emulator.cpp runs csrc/'s dispatch (plans, kernel bodies) on the
CPU. The cost model builds it with memory-access instrumentation
(``-fsanitize=thread`` without its runtime; csrc/emulate/trace.cpp takes the
calls) and uses two modes:

* ``plan``: every launch a primitive would make (body type, blocks, threads,
  shared memory) for the GPU's multiprocessor count, nothing run;
* ``trace``: a sample of each launch's blocks runs; per source line of the
  kernel bodies it reports the warp-level instances, bytes per lane, and
  shared-memory wavefronts or global sectors per instance
  (:class:`SiteStats`).

Arguments are the backend's own flat lists (:mod:`localconn.cuda_args`) of
CPU tensors with the case's shapes and layouts (``torch.empty``: untouched
pages cost nothing, only the traced blocks read them).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from localconn import cuda_args
from localconn.geometry import Geometry

from .sass import site_key
from .tools import ROOT, compiler

CSRC = ROOT / "csrc"
BUILD = ROOT / "build" / "perf-model"
FLAGS = ["-std=c++17", "-fPIC", "-Wno-unknown-pragmas"]


def build() -> Path:
    """The instrumented emulator library (cached by a hash of csrc/)."""
    sources = sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cuh", ".cpp", ".cu"))
    digest = hashlib.sha256()
    for p in sources:
        digest.update(p.name.encode() + p.read_bytes())
    lib = BUILD / f"emulator-trace-{digest.hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    cxx = compiler()
    BUILD.mkdir(parents=True, exist_ok=True)
    # per-process names, the library renamed into place: concurrent builds (pytest -n)
    # never load a half-written one
    pid = os.getpid()
    emu, trace = lib.with_suffix(f".{pid}.emu.o"), lib.with_suffix(f".{pid}.trace.o")
    tmp = lib.with_suffix(f".{pid}.tmp")
    steps = [
        [cxx, *FLAGS, "-O1", "-g", "-fsanitize=thread", "--param=tsan-instrument-func-entry-exit=0",
         "-DLC_EMU_TRACE", "-c", str(CSRC / "emulate" / "emulator.cpp"), "-o", str(emu)],
        [cxx, *FLAGS, "-O2", "-c", str(CSRC / "emulate" / "trace.cpp"), "-o", str(trace)],
        [cxx, "-shared", "-Wl,-z,defs", str(emu), str(trace), "-o", str(tmp)],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"building the traced emulator failed: {' '.join(cmd)}\n{r.stderr}")
    tmp.replace(lib)
    emu.unlink(missing_ok=True)
    trace.unlink(missing_ok=True)
    return lib


@dataclass(frozen=True)
class LaunchRecord:
    """One kernel launch csrc/dispatch.h makes."""

    body: str   # e.g. "ConnTile<float, 7, false>"
    args: str   # e.g. "ConnArgs, ConnTilePlan"
    kernel: int  # csrc/plan.h's Kernel (0..7), -1 for ReduceSplits
    blocks: int
    threads: int
    smem: int
    kf: int
    workspace_bytes: int


@dataclass
class SiteStats:
    """One load or store site of a kernel body, over the traced warps of a launch."""

    site: str  # :func:`perfmodel.sass.site_key` of the access's inline chain
    space: str  # "shared" or "global"
    write: bool
    size: int  # bytes per access at the site
    instances: float  # warp-level executions, summed over traced warps
    lane_bytes: float  # bytes per lane (the busiest lane), summed over traced warps
    cost_per_instance: float  # shared: wavefronts; global: 32-byte sectors
    warps: float  # traced warps that executed the site
    lines_per_instance: float = 0.0  # global: 128-byte lines (L1 takes one a clock)


@dataclass
class Trace:
    """What the traced blocks of one launch did."""

    record: LaunchRecord
    blocks: int  # traced
    warps: int  # traced
    sites: list[SiteStats]


_SIG = re.compile(r"\[with Body = (.*); Args = \{(.*)\}\]")


def _short(t: str) -> str:
    return t.replace("lc::", "").strip()


class Emulator:
    """ctypes access to the instrumented emulator."""

    def __init__(self, lib: Optional[Path] = None) -> None:
        self.path = lib or build()
        self.lib = ctypes.CDLL(str(self.path))
        i64p, vp, i32p = (ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p,
                          ctypes.POINTER(ctypes.c_int32))
        L = self.lib
        L.lc_emu_conn2d.argtypes = [i64p, vp, vp, vp, vp, i32p]
        L.lc_emu_conn2d_transpose.argtypes = [i64p, vp, vp, vp, i32p]
        L.lc_emu_corr2d.argtypes = [i64p, vp, vp, vp, ctypes.c_int64, i32p]
        L.lc_emu_known.argtypes = [ctypes.c_int, vp, vp, ctypes.c_int64, ctypes.c_int64,
                                   ctypes.c_int64, ctypes.c_int]
        L.lc_emu_error.restype = ctypes.c_char_p
        L.lc_emu_set_mode.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        L.lc_emu_set_smem_optin.argtypes = [ctypes.c_int64]
        L.lc_emu_record.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, i64p]
        L.lc_trace_add_buffer.argtypes = [vp, ctypes.c_int64]
        L.lc_trace_site.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64),
                                    ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
                                    ctypes.POINTER(ctypes.c_int)]
        L.lc_trace_launch_info.argtypes = [ctypes.c_int, i64p, i64p]
        L.lc_trace_totals.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
        self._lines: dict[int, str] = {}

    # ------------------------------------------------------------ calls
    def _run(self, primitive: str, tensors: dict[str, Optional[torch.Tensor]],
             meta: list[int]) -> None:
        m = (ctypes.c_int64 * max(len(meta), 1))(*meta)
        chosen = ctypes.c_int32(-1)

        def p(name: str) -> Optional[int]:
            t = tensors.get(name)
            return None if t is None else t.data_ptr()

        if primitive.startswith("known:"):  # csrc/model/known.cuh: meta = [n, stride, blocks, threads]
            which = ("copy", "fma_chain", "shared_stride", "partial_units",
                     "global_stride", "async_copy", "predicated_copy").index(primitive.split(":")[1])
            n, stride, blocks, threads = meta
            rc = self.lib.lc_emu_known(which, p("src"), p("dst"), n, stride, blocks, threads)
        elif primitive == "conn2d":
            rc = self.lib.lc_emu_conn2d(m, p("src"), p("w"), p("bias"), p("dst"), ctypes.byref(chosen))
        elif primitive == "conn2d_transpose":
            rc = self.lib.lc_emu_conn2d_transpose(m, p("src"), p("w"), p("dst"), ctypes.byref(chosen))
        else:
            rc = self.lib.lc_emu_corr2d(m, p("a"), p("b"), p("dst"), 0, ctypes.byref(chosen))
        if rc != 0:
            raise RuntimeError(f"{primitive}: status {rc} {self.lib.lc_emu_error().decode()}")

    def records(self) -> list[LaunchRecord]:
        out = []
        buf = ctypes.create_string_buffer(4096)
        fields = (ctypes.c_int64 * 6)()
        for i in range(self.lib.lc_emu_record_count()):
            self.lib.lc_emu_record(i, buf, 4096, fields)
            m = _SIG.search(buf.value.decode())
            body, args = (m[1], m[2]) if m else (buf.value.decode(), "")
            kernel = -1 if "ReduceSplits" in body else int(fields[0])
            out.append(LaunchRecord(_short(body), _short(args), kernel, *(int(v) for v in fields[1:])))
        return out

    def set_smem_optin(self, nbytes: int) -> None:
        """Plan for a device whose blocks may opt in to ``nbytes`` of shared memory
        (csrc/params.h ConnArgs::smem_optin; 0: plan.h's portable floor)."""
        self.lib.lc_emu_set_smem_optin(nbytes)

    def plan(self, call: Call, sm_count: int) -> list[LaunchRecord]:
        """The launches ``call`` makes on a GPU with ``sm_count`` multiprocessors."""
        self.lib.lc_emu_set_mode(1, 2, sm_count)
        self._run(call.primitive, call.tensors, call.meta)
        return self.records()

    def trace(self, call: Call, sm_count: int, samples: int = 8) -> list[Trace]:
        """Run ``samples`` blocks of every launch of ``call`` with tracing on."""
        self.lib.lc_trace_reset()
        for t in call.tensors.values():
            if t is not None:
                self.lib.lc_trace_add_buffer(t.data_ptr(), t.numel() * t.element_size())
        self.lib.lc_emu_set_mode(2, samples, sm_count)
        self._run(call.primitive, call.tensors, call.meta)
        records = self.records()
        self.lib.lc_emu_set_mode(0, 2, 1)
        sites = []
        for s in range(self.lib.lc_trace_site_count()):
            pc, space, write, size = ctypes.c_uint64(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
            self.lib.lc_trace_site(s, ctypes.byref(pc), ctypes.byref(space), ctypes.byref(write),
                                   ctypes.byref(size))
            sites.append((pc.value, space.value, write.value, size.value))
        lines = self._source_lines([pc for pc, *_ in sites])
        out = []
        totals = (ctypes.c_double * 6)()
        for i, rec in enumerate(records):
            blocks, warps = ctypes.c_int64(), ctypes.c_int64()
            self.lib.lc_trace_launch_info(i, ctypes.byref(blocks), ctypes.byref(warps))
            stats = []
            for s, (pc, space, write, size) in enumerate(sites):
                self.lib.lc_trace_totals(i, s, totals)
                if totals[0] == 0:
                    continue
                stats.append(SiteStats(lines[pc], "shared" if space == 0 else "global",
                                       bool(write), size, totals[0], totals[1],
                                       totals[2] / max(totals[3], 1.0), totals[4],
                                       totals[5] / max(totals[3], 1.0)))
            out.append(Trace(rec, blocks.value, warps.value, stats))
        return out

    def _source_lines(self, pcs: list[int]) -> dict[int, str]:
        """The site key of each return address (the access is the call just before it)."""
        todo = [pc for pc in pcs if pc not in self._lines]
        if todo:
            base = _load_base(self.path)
            offsets = "\n".join(hex(pc - base - 1) for pc in todo)
            r = subprocess.run(["addr2line", "-a", "-i", "-e", str(self.path)], input=offsets,
                               capture_output=True, text=True, check=True)
            chains: list[list[tuple[str, int]]] = []
            for line in r.stdout.splitlines():
                if line.startswith("0x"):
                    chains.append([])
                elif chains:
                    file, _, num = line.rpartition(":")
                    num = num.split()[0] if num else "0"
                    chains[-1].append((file, int(num) if num.isdigit() else 0))
            for pc, chain in zip(todo, chains):
                self._lines[pc] = site_key(tuple(chain))
        return self._lines


def _load_base(path: Path) -> int:
    """Where the dynamic loader mapped ``path`` in this process."""
    real = str(path.resolve())
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[5] == real and parts[2] == "00000000":
            return int(parts[0].split("-")[0], 16)
    raise RuntimeError(f"{path} is not mapped in this process")


@dataclass
class Call:
    """One primitive call for the emulator: the backend's argument list and its tensors."""

    primitive: str
    meta: list[int]
    tensors: dict[str, Optional[torch.Tensor]]


def conn_call(primitive: str, src: torch.Tensor, weight: torch.Tensor, dst: torch.Tensor,
              geo: Geometry) -> Call:
    """``conn2d`` (src = x, dst = y) or ``conn2d_transpose`` (src = g, dst = x-bar)."""
    return Call(primitive, cuda_args.conn_meta(src, weight, 0, dst, geo),
                {"src": src, "w": weight, "bias": None, "dst": dst})


def known_call(kind: str, src: torch.Tensor, dst: torch.Tensor, n: int, stride: int, blocks: int,
               threads: int) -> Call:
    """A kernel of csrc/model/known.cuh: ``copy``, ``fma_chain``, ``shared_stride``,
    ``partial_units``, ``global_stride``, ``async_copy`` or ``predicated_copy``."""
    return Call(f"known:{kind}", [n, stride, blocks, threads], {"src": src, "dst": dst})


def corr_call(a: torch.Tensor, b: torch.Tensor, weight_shape: tuple[int, ...],
              geo: Geometry) -> Call:
    """``corr2d`` into a contiguous result of ``weight_shape``."""
    out = torch.empty(weight_shape, dtype=a.dtype)
    return Call("corr2d", cuda_args.corr_meta(a, b, weight_shape, geo),
                {"a": a, "b": b, "dst": out})
