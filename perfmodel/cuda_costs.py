"""The CUDA backend's kernels: the template instance that runs, its SASS, its counts.

1. The emulator in ``plan`` mode names each launch of a primitive call
   (kernel body type, blocks, threads, dynamic shared memory) as csrc/plan.h
   plans it for the GPU's multiprocessor count.
2. csrc/*.cu are compiled for sm_90 exactly as the extension is (nvcc, the
   flags of setup.py and torch.utils.cpp_extension, ``-lineinfo``) into
   cubins, once per source hash; the launch's ``body_kernel<Body, Args...>``
   instance is found by its demangled name.
3. The emulator in ``trace`` mode runs a sample of the launch's blocks:
   bytes per lane at each load/store source line pin the SASS block counts
   (:mod:`perfmodel.flow`), and the lanes' addresses give the wavefronts and
   sectors per access (:mod:`perfmodel.counts`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

from . import cubin as cubin_mod
from .counts import Pattern, Patterns, count, with_active_shares
from .emulator import Call, Emulator, LaunchRecord, Trace
from .flow import Anchor, solve
from .predict import KernelCost
from .tools import ROOT, nvcc

#: what is compiled: the extension's sources, and the known-cost kernels of the model's tests
SOURCES = ("conn", "conn_transpose", "corr", "model/known")
#: nvcc flags of the extension (setup.py + torch.utils.cpp_extension's defaults)
NVCC_FLAGS = ["-O3", "-std=c++17", "-lineinfo", "--expt-relaxed-constexpr",
              "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
              "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]
ARCH = "sm_90"
#: also: ptxas's report kept beside each cubin (``<source>.ptxas.log``: make check-cuda's
#: sm_90 half reads it instead of compiling csrc/ a second time), warnings are errors
CHECK_FLAGS = ["-Xptxas", "-v", "-Werror", "all-warnings"]


def cubins(sources: tuple[str, ...] = SOURCES) -> list[Path]:
    """csrc/<source>.cu compiled for sm_90 (cached by a hash of csrc/ and the flags)."""
    compiler = nvcc()
    if compiler is None:
        raise RuntimeError("nvcc not found: the CUDA backend's kernels cannot be compiled here")
    csrc = ROOT / "csrc"
    digest = hashlib.sha256()
    for p in sorted(csrc.rglob("*")):
        if p.is_file() and "emulate" not in p.parts:
            digest.update(str(p.relative_to(csrc)).encode() + p.read_bytes())
    digest.update(" ".join(NVCC_FLAGS + CHECK_FLAGS).encode())
    out = ROOT / "build" / "perf-model" / "cuda" / digest.hexdigest()[:16]
    paths = [out / f"{s.replace('/', '-')}.cubin" for s in sources]
    todo = [(s, p) for s, p in zip(sources, paths) if not p.exists()]
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        procs = []
        for s, p in todo:  # two at a time: nvcc is single-threaded per file here
            cmd = [compiler, "-cubin", f"-arch={ARCH}", *NVCC_FLAGS, *CHECK_FLAGS, f"-I{csrc}",
                   str(csrc / f"{s}.cu"), "-o", _tmp(p)]
            procs.append((subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), p))
            if len(procs) == 2:
                _wait(procs.pop(0))
        for item in procs:
            _wait(item)
    return paths


def _wait(item: tuple[subprocess.Popen, Path]) -> None:
    proc, path = item
    _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"nvcc failed for {path.name}:\n{err[-3000:]}")
    ptxas_log(path).write_text(err)
    Path(_tmp(path)).replace(path)


def ptxas_log(cubin: Path) -> Path:
    """ptxas's report (``-Xptxas -v``: registers, stack, spills) of the compile of ``cubin``."""
    return cubin.with_suffix(".ptxas.log")


def _tmp(path: Path) -> str:
    """A per-process name to compile ``path`` under (concurrent runs, e.g. pytest -n)."""
    return f"{path}.{os.getpid()}.tmp"


def _normal(t: str) -> str:
    t = t.replace("lc::", "").replace("half_t", "__half").replace("bf16_t", "__nv_bfloat16")
    t = t.replace("long int", "long").replace("int64_t", "long")
    return re.sub(r"\s+", "", t)


_BODY = re.compile(r"body_kernel(?:_min)?<(.*)>\(")


def find_kernel(record: LaunchRecord) -> cubin_mod.Kernel:
    """The compiled ``body_kernel`` instance of ``record``'s body and arguments."""
    want = _normal(f"{record.body},{record.args}")
    sources = ("model/known",) if record.args == "KnownArgs" else SOURCES[:-1]
    for path in cubins(sources):
        for k in cubin_mod.kernels(path).values():
            m = _BODY.search(k.demangled)
            if m and _normal(m[1]) == want:
                return k
    raise LookupError(f"no compiled instance of {record.body} ({record.args}) in csrc/*.cu")


def _innermost(site: str) -> str:
    return site.split("<", 1)[0]


def _anchors_and_patterns(k: cubin_mod.Kernel,
                          trace: Trace) -> tuple[list[Anchor], Patterns, list[str]]:
    """Trace bytes per lane (per warp) at each load/store site, and the access pattern there.

    Sites match by source line and the line that inlined it; a SASS site whose line the
    trace never reached is an anchor of 0 bytes. nvcc's line
    table sometimes files one inlined helper's loads from two call sites
    under one of them (e.g. conn_rows' weight loads under its input loads):
    when a traced site has no SASS twin, every site of the same helper line
    is pooled into one anchor.
    """
    lane_bytes: dict[tuple, float] = defaultdict(float)
    # cost*inst, inst, size, lines*inst
    cost: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for s in trace.sites:
        key = (s.site, s.space, s.write)
        lane_bytes[key] += s.lane_bytes
        acc = cost[key]
        acc[0] += s.cost_per_instance * s.instances
        acc[1] += s.instances
        acc[2] = max(acc[2], s.size)
        acc[3] += s.lines_per_instance * s.instances
    sass_keys = set()
    for ins in k.code.instrs:
        for mem in ins.accesses:
            if mem[0] != "local":
                sass_keys.add((ins.site, mem[0], mem[2] and not mem[1]))
    orphans = {(_innermost(key[0]), key[1], key[2]) for key in lane_bytes if key not in sass_keys}

    def group(key: tuple) -> tuple:
        pooled = (_innermost(key[0]), key[1], key[2])
        return pooled if pooled in orphans else key

    traced: dict[tuple, float] = defaultdict(float)
    for key, v in lane_bytes.items():
        traced[group(key)] += v
    # a load or store whose source line the traced blocks never reached moved 0 bytes (e.g.
    # a fallback path for non-finite data): pinned to 0, or the solver may route flow there
    reached = {_innermost(key[0]) for key in lane_bytes}
    for key in sass_keys:
        if _innermost(key[0]) not in reached:
            traced[key] += 0.0
    warps = max(trace.warps, 1)
    coeff: dict[tuple, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    sure: dict[tuple, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for b in k.code.blocks:
        for ins in b.instrs:
            for space, reads, writes, width in ins.accesses:
                if space == "local":
                    continue
                key = group((ins.site, space, writes and not reads))
                if key in traced:
                    coeff[key][b.index] += width
                    if not ins.predicate or ins.predicate == "@PT":
                        sure[key][b.index] += width
    anchors = [Anchor(f"{site} {space} {'st' if w else 'ld'}", dict(coeff[key]),
                      traced[key] / warps, dict(sure[key]))
               for key in coeff for site, space, w in [key]]
    patterns = {key: Pattern(c[0] / c[1], int(c[2]), c[3] / c[1], c[1] / warps)
                for key, c in cost.items() if c[1] > 0}
    return anchors, patterns, sorted(f"{site} {space}" for site, space, _ in orphans)


def launch_costs(emu: Emulator, call: Call, sm_count: int, dram_bytes: list[float],
                 samples: int = 8) -> list[KernelCost]:
    """The cost of every kernel ``call`` launches (``dram_bytes``: compulsory bytes each)."""
    out = []
    for i, trace in enumerate(emu.trace(call, sm_count, samples)):
        rec = trace.record
        k = find_kernel(rec)
        anchors, patterns, pooled = _anchors_and_patterns(k, trace)
        flow = solve(k.code, anchors)
        notes = []
        if pooled:
            notes.append("nvcc's line table merges call sites of " + ", ".join(pooled)
                         + ": their traced bytes pin the SASS blocks together (less certain)")
        bad = {a: r for a, r in flow.residuals.items() if abs(r) > 0.05}
        if bad:
            notes.append("anchors off by " + ", ".join(f"{a} {r:+.0%}" for a, r in bad.items()))
        if flow.unanchored_loops:
            notes.append("loops no trace pins (assumed to run once): "
                          + ", ".join(sorted(set(flow.unanchored_loops))))
        if k.resources.stack:
            notes.append(f"{k.resources.stack} B stack frame per thread (local memory)")
        out.append(KernelCost(
            name=f"cuda {rec.body}", blocks=rec.blocks, threads=rec.threads,
            registers=k.resources.registers, smem=rec.smem + k.resources.shared,
            stack=k.resources.stack,
            counts=count(k.code, flow.counts, with_active_shares(k.code, flow.counts, patterns)),
            dram_bytes=dram_bytes[i] if i < len(dram_bytes) else 0.0, notes=notes))
    return out
