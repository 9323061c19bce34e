"""Dynamic counts of one kernel per warp: SASS blocks times how often they run.

Given the per-warp execution count of every basic block (:mod:`perfmodel.flow`)
this adds up, per warp: issued instructions by class, multiply-adds per
lane, memory instructions and bytes by space, shared-memory wavefronts,
global 32-byte sectors and 128-byte lines, and finds the hot loop.

Wavefronts and sectors per memory instruction come from the access pattern
at its source line when one is known (:class:`Pattern`, from the
emulator's trace: the cost per warp-wide access, scaled by the SASS width
over the traced width), else the conflict-free / fully coalesced ideal:
``ceil(32 * width / 128)`` wavefronts, ``32 * width / 32`` sectors.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from .inflight import inflight_bytes
from .sass import Function, Instr

MEMORY_KINDS = ("shared_ld", "shared_st", "global_ld", "global_st", "local_ld", "local_st")


@dataclass(frozen=True)
class Pattern:
    """The access pattern of one source line: cost per warp-wide access of ``size`` bytes."""

    cost: float  # shared: wavefronts; global: sectors
    size: int
    lines: float = 0.0  # global: 128-byte lines per warp-wide access
    instances: float = 0.0  # warp-wide accesses a traced warp (any lane active)
    # of the SASS's issued accesses at the line (bytes a lane), the share with a lane active:
    # an access predicated off on every lane makes no request (with_active_shares)
    active: float = 1.0


Patterns = dict[tuple[str, str, bool], Pattern]  # (site, space, write) -> Pattern


@dataclass
class HotLoop:
    """The loop where most instructions issue, per iteration."""

    source: str
    iterations: float  # per warp
    instrs: float
    multiplies: float  # instructions that multiply (FFMA, FMUL, HFMA2, ... , tensor)
    shared: float  # LDS/STS
    global_: float  # LDG/STG
    share: float  # of all issued instructions


@dataclass
class Counts:
    """Per-warp dynamic counts of one kernel (averaged over warps)."""

    issued: float = 0.0
    by_class: Counter = field(default_factory=Counter)
    mul_lanes: float = 0.0  # multiplies per lane (fused multiply-adds or plain multiplies)
    memory: Counter = field(default_factory=Counter)  # kind -> instructions
    lane_bytes: Counter = field(default_factory=Counter)  # kind -> bytes per lane
    widths: Counter = field(default_factory=Counter)  # "global_ld:16" -> instructions
    wavefronts: float = 0.0
    sectors: float = 0.0  # global and local 32-byte sectors (L1 <-> L2 transactions)
    lines: float = 0.0  # global and local 128-byte lines (L1 requests: one a clock)
    inflight: float = 0.0  # bytes of global loads in flight per memory stall (inflight.py)
    hot: Optional[HotLoop] = None


def _kind(mem: tuple[str, bool, bool, int]) -> tuple[str, int]:
    space, reads, writes, width = mem
    return (f"{space}_{'st' if writes and not reads else 'ld'}", width)


def _kinds(ins: Instr) -> list[tuple[str, int]]:
    """(kind, bytes a lane) of each of ``ins``'s memory accesses (``LDGSTS``: two)."""
    return [_kind(m) for m in ins.accesses]


def _key(ins: Instr, kind: str) -> tuple[str, str, bool]:
    """The :data:`Patterns` key of ``ins``'s access of ``kind``: (site, space, store?)."""
    return (ins.site, kind.split("_")[0], kind.endswith("_st"))


def _pattern(ins: Instr, kind: str, patterns: Patterns) -> Optional[Pattern]:
    """The traced pattern of ``ins``'s source line (none for local memory)."""
    key = _key(ins, kind)
    return patterns.get(key) if key[1] != "local" else None


def _cost(ins: Instr, kind: str, width: int, patterns: Patterns) -> float:
    """Wavefronts (shared) or sectors (global, local) of one warp-wide execution."""
    space = kind.split("_")[0]
    pat = _pattern(ins, kind, patterns)
    if pat is not None:  # the traced pattern, scaled to this instruction's width
        return max(1.0, pat.cost * width / max(pat.size, 1)) * pat.active
    if space == "shared":
        return float(math.ceil(32 * width / 128))
    return 32 * width / 32


def _lines(ins: Instr, kind: str, width: int, patterns: Patterns) -> float:
    """128-byte lines of one warp-wide global or local execution (the traced pattern's,
    scaled to this instruction's width, else a coalesced access's ``ceil(32 * width / 128)``)."""
    pat = _pattern(ins, kind, patterns)
    if pat is not None and pat.lines > 0:
        return max(1.0, pat.lines * width / max(pat.size, 1)) * pat.active
    return float(math.ceil(32 * width / 128))


def with_active_shares(f: Function, blocks: np.ndarray, patterns: Patterns) -> Patterns:
    """``patterns`` with each line's ``active`` share: the bytes a lane the trace saw
    accessed there (warp-wide accesses with a lane active x their size) over the bytes
    the SASS issues there (``blocks[i]`` runs a warp x each access's width), at most 1.

    Unrolled code issues an access whatever its predicate: e.g. the 8 copies of a row of
    up to 64 columns, of which a row of 28 makes 4 (``@P LDGSTS``, P false on every lane
    for the others). Such an access makes no request, so it costs no sectors, lines or
    wavefronts (its issue slot is still counted). Counted in bytes, a source access the
    SASS splits (one 16-byte access as four of 4) or merges (two of 4 as one of 8) keeps
    the share at 1.
    """
    issued: Counter = Counter()
    for b, n in zip(f.blocks, blocks):
        if n <= 0:
            continue
        for ins in b.instrs:
            for kind, width in _kinds(ins):
                if not kind.startswith("local"):
                    issued[_key(ins, kind)] += n * width
    out = dict(patterns)
    for key, pat in patterns.items():
        if issued[key] > 0 and pat.instances > 0:
            out[key] = replace(pat, active=min(1.0, pat.instances * pat.size / issued[key]))
    return out


def count(f: Function, blocks: np.ndarray, patterns: Patterns) -> Counts:
    """Per-warp counts of ``f`` whose blocks run ``blocks[i]`` times per warp."""
    c = Counts()
    for b, n in zip(f.blocks, blocks):
        if n <= 0:
            continue
        for ins in b.instrs:
            c.issued += n
            c.by_class[ins.cls] += n * ins.mma_units if ins.cls == "tensor" else n
            c.mul_lanes += n * ins.mul_lanes
            for kind, width in _kinds(ins):
                _add_access(c, ins, kind, width, n, patterns)
    c.hot = hot_loop(f, blocks, c.issued)

    def share(ins: Instr) -> float:  # of a global load's issued bytes, those requested
        pat = _pattern(ins, "global_ld", patterns)
        return pat.active if pat is not None else 1.0

    c.inflight = inflight_bytes(f, blocks, share)
    if os.environ.get("LOCALCONN_PERF_LINES"):
        _dump_lines(f, blocks, patterns, os.environ["LOCALCONN_PERF_LINES"])
    return c


def _add_access(c: Counts, ins: Instr, kind: str, width: int, n: float,
                patterns: Patterns) -> None:
    """One memory access of ``ins``, run ``n`` times a warp, into ``c``."""
    c.memory[kind] += n
    c.lane_bytes[kind] += n * width
    c.widths[f"{kind}:{width}"] += n
    cost = _cost(ins, kind, width, patterns)
    if kind.startswith("shared"):
        c.wavefronts += n * cost
    else:
        c.sectors += n * cost
        c.lines += n * _lines(ins, kind, width, patterns)


def _dump_lines(f: Function, blocks: np.ndarray, patterns: Patterns, path: str) -> None:
    """Appends ``f``'s dynamic per-warp counts by source line and opcode to ``path``
    (``LOCALCONN_PERF_LINES=path``: where a kernel's instructions and shared-memory
    wavefronts go)."""
    lines: Counter = Counter()
    waves: Counter = Counter()
    ops: dict = {}
    for b, n in zip(f.blocks, blocks):
        for ins in b.instrs:
            if n > 0:
                key = f"{ins.file.split('/')[-1]}:{ins.line}"
                lines[key] += n
                ops.setdefault(key, Counter())[ins.base] += n
                for kind, width in _kinds(ins):
                    if kind.startswith("shared"):
                        waves[key] += n * _cost(ins, kind, width, patterns)
    with open(path, "a") as out:
        out.write(f"== {f.name}: {sum(lines.values()):.0f} instructions, "
                  f"{sum(waves.values()):.0f} shared wavefronts a warp\n")
        for key, n in lines.most_common(40):
            top = ", ".join(f"{o} {v:.0f}" for o, v in ops[key].most_common(5))
            wf = f" [{waves[key]:.0f} wavefronts]" if waves[key] else ""
            out.write(f"{n:9.0f}  {key:28s} {top}{wf}\n")


def hot_loop(f: Function, blocks: np.ndarray, issued: float) -> Optional[HotLoop]:
    """The innermost loop holding at least half the instructions of the busiest loop."""
    loops = []
    for b in f.blocks:
        for s in b.succ:
            if s <= b.index:
                body = range(s, b.index + 1)
                work = sum(blocks[i] * len(f.blocks[i].instrs) for i in body)
                loops.append((work, s, b.index))
    if not loops or issued <= 0:
        return None
    best = max(loops)
    inner = [lp for lp in loops if best[1] <= lp[1] and lp[2] <= best[2] and lp[0] >= best[0] / 2]
    work, head, tail = min(inner, key=lambda lp: lp[2] - lp[1])
    iters = max(blocks[head], 1e-9)
    instrs = muls = shared = glob = 0.0
    for i in range(head, tail + 1):
        n = blocks[i]
        for ins in f.blocks[i].instrs:
            instrs += n
            muls += n * (ins.mul_lanes > 0 or ins.cls == "tensor")
            for kind, _ in _kinds(ins):
                shared += n * kind.startswith("shared")
                glob += n * kind.startswith("global")
    first = f.blocks[head].instrs[0]
    return HotLoop(first.source, float(iters), instrs / iters, muls / iters, shared / iters,
                   glob / iters, work / issued)
