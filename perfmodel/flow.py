"""How often each basic block runs: flow conservation pinned by measured anchors.

A warp enters the kernel once. Every block's count is the flow into it and
out of it (control-flow edges, exits, calls into the division subroutines
and their returns): that alone fixes straight-line code, but not how often
a loop turns or which side of a branch runs. *Anchors* pin those: linear
equations ``sum_B coeff[B] * count[B] = value`` measured elsewhere, e.g. the
bytes a lane loads at one source line (the emulator's trace of the real
kernel body, :mod:`perfmodel.trace`), or the multiply-adds a lane must do
(Triton tiles, known from the tile shape).

The counts solve a linear programme: all flows >= 0, conservation exact,
minimising the anchors' relative deviations (an L1 fit) plus faint
preferences (weight ``PRIOR`` per unit of flow) where no anchor decides:
a guard that skips a short run of code passes (bounds checks of a stencil
mostly do), a converged warp falls through ``BRA.DIV`` (``__syncwarp``'s slow path) and
a predicated exit is not taken (only the idle threads of the
last block leave early), calls to subroutines are avoided (they are the slow paths of
64-bit division, taken only when an operand needs more than 32 bits), the
two sides of any other forward branch run equally often,
and a loop turns as little as it can (a loop no anchor reaches runs its body about once per
entry, e.g. the zero-trip loops of ``input_span`` at dilation 1, whose
guard is a forward branch taken half the time). :func:`solve` reports such
loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .sass import Function

PRIOR = 1e-6


@dataclass
class Anchor:
    """``sum_B sure[B] * count[B] <= value <= sum_B coeff[B] * count[B]`` (counts per warp).

    ``coeff`` counts every instruction of the anchor (e.g. bytes per lane of
    the loads at one source line), ``sure`` only those that always act: a
    predicated load moves its bytes only where its predicate holds, so it
    bounds the flow from one side. Without predicated instructions
    (``sure=None``) the anchor is an equation.
    """

    name: str
    coeff: dict[int, float]
    value: float
    sure: Optional[dict[int, float]] = None


@dataclass
class FlowResult:
    """Per-warp execution count of every block, and how well the anchors were met."""

    counts: np.ndarray
    residuals: dict[str, float]  # anchor -> relative error of the solution
    unanchored_loops: list[str] = field(default_factory=list)  # source of loops no anchor pins


def _edges(f: Function) -> tuple[list[tuple[str, int, int]], dict[int, int]]:
    """Flow variables: ``(kind, src, dst)``; kind in edge/exit/ret/call. Callee entries too."""
    edges: list[tuple[str, int, int]] = []
    callee: dict[int, int] = {}
    for b in f.blocks:
        for s in b.succ:
            edges.append(("edge", b.index, s))
        if b.exits:
            edges.append(("exit", b.index, -1))
        if b.returns:
            edges.append(("ret", b.index, -1))
        if b.calls is not None and b.calls in f.labels:
            dst = f.block_of(b.calls)
            callee[b.index] = dst
            edges.append(("call", b.index, dst))
    return edges, callee


def _falls_into(f: Function, start: int, target: int, limit: int = 4) -> bool:
    """Do blocks ``start..`` reach ``target`` straight (one successor each, at most ``limit``)?"""
    i = start
    for _ in range(limit):
        if i == target:
            return True
        succ = f.blocks[i].succ
        if len(succ) != 1 or f.blocks[i].exits:
            return False
        i = succ[0]
    return i == target


def _calls_soon(f: Function, start: int, limit: int = 2) -> bool:
    """Does the straight run of blocks from ``start`` call a subroutine within ``limit``?"""
    i = start
    for _ in range(limit):
        b = f.blocks[i]
        if b.calls is not None:
            return True
        if len(b.succ) != 1:
            return False
        i = b.succ[0]
    return False


def loops(f: Function) -> list[tuple[int, int]]:
    """Back edges ``(src, header)``: a branch to a block at or before its own."""
    return [(b.index, s) for b in f.blocks for s in b.succ if s <= b.index]


#: a loop turns at most this many times per entry (keeps circulations tied to real entries)
MAX_TRIPS = 1e6


def solve(f: Function, anchors: list[Anchor]) -> FlowResult:
    """Block counts per warp (the kernel entered once) under ``anchors``.

    A linear programme (``scipy.optimize.linprog``, HiGHS): flows >= 0 with
    exact conservation, every loop's back edges at most ``MAX_TRIPS`` times
    the flow entering it; minimise the anchors' relative deviations plus
    ``PRIOR`` times the imbalance of every two-way branch.
    """
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    edges, _ = _edges(f)
    nb, ne = len(f.blocks), len(edges)
    into: list[list[int]] = [[] for _ in range(nb)]
    outof: list[list[int]] = [[] for _ in range(nb)]
    for j, (kind, src, dst) in enumerate(edges):
        if kind in ("edge", "call"):
            into[dst].append(j)
        if kind != "call":
            outof[src].append(j)
    back_edges = {j for j, (kind, src, dst) in enumerate(edges) if kind == "edge" and dst <= src}
    skips = set()  # edges rarely taken: over a guarded run, an early exit, into a slow path
    branches = []
    for b in f.blocks:
        outs = [j for j in outof[b.index] if edges[j][0] in ("edge", "exit")]
        if len(outs) != 2 or back_edges.intersection(outs):
            continue
        if any(edges[j][0] == "exit" for j in outs):  # @P EXIT: idle threads leave, most go on
            skips.update(j for j in outs if edges[j][0] == "exit")
            continue
        if b.instrs[-1].opcode.startswith("BRA.DIV"):  # __syncwarp's path for a diverged warp
            skips.update(j for j in outs if edges[j][2] != b.index + 1)
            continue
        far = max(outs, key=lambda j: edges[j][2])
        near, target = min(outs, key=lambda j: edges[j][2]), edges[far][2]
        if edges[near][2] == b.index + 1 and _falls_into(f, b.index + 1, target):
            skips.add(far)
        else:
            slow_sides = [j for j in outs if edges[j][0] == "edge" and _calls_soon(f, edges[j][2])]
            if len(slow_sides) == 1:
                skips.add(slow_sides[0])  # the side that calls a subroutine: rarely taken
            else:
                branches.append(outs)
    na, nbr = len(anchors), len(branches)
    nv = ne + 2 * na + nbr  # flows, anchor slacks (below all, above sure), branch imbalances
    eq: tuple[list, list, list] = ([], [], [])
    ub: tuple[list, list, list] = ([], [], [])
    eq_b: list[float] = []
    ub_b: list[float] = []

    def put(m: tuple[list, list, list], r: int, cols: list[int], vals: list[float]) -> None:
        m[0].extend([r] * len(cols))
        m[1].extend(cols)
        m[2].extend(vals)

    def count_terms(coeff: dict[int, float], sign: float) -> tuple[list[int], list[float], float]:
        cols, vals, const = [], [], 0.0
        for b, c in coeff.items():
            cols += into[b]
            vals += [sign * c] * len(into[b])
            const += sign * c if b == 0 else 0.0
        return cols, vals, const

    for b in range(nb):  # conservation: in - out = -entry
        put(eq, len(eq_b), into[b] + outof[b], [1.0] * len(into[b]) + [-1.0] * len(outof[b]))
        eq_b.append(-1.0 if b == 0 else 0.0)
    for j, (kind, src, _dst) in enumerate(edges):  # a call's flow is its caller's count
        if kind == "call":
            put(eq, len(eq_b), [j] + into[src], [1.0] + [-1.0] * len(into[src]))
            eq_b.append(1.0 if src == 0 else 0.0)
    for i, a in enumerate(anchors):
        # all >= value - s_hi   <=>  -all - s_hi <= -value
        cols, vals, const = count_terms(a.coeff, -1.0)
        put(ub, len(ub_b), cols + [ne + 2 * i], vals + [-1.0])
        ub_b.append(-a.value - const)
        # sure <= value + s_lo
        cols, vals, const = count_terms(a.coeff if a.sure is None else a.sure, 1.0)
        put(ub, len(ub_b), cols + [ne + 2 * i + 1], vals + [-1.0])
        ub_b.append(a.value - const)
    for i, (fa, fb) in enumerate(branches):  # |fa - fb| <= d
        d = ne + 2 * na + i
        put(ub, len(ub_b), [fa, fb, d], [1.0, -1.0, -1.0])
        ub_b.append(0.0)
        put(ub, len(ub_b), [fa, fb, d], [-1.0, 1.0, -1.0])
        ub_b.append(0.0)
    for src, header in loops(f):  # back <= MAX_TRIPS * (entry into the loop)
        back = [j for j in outof[src] if edges[j][2] == header and edges[j][0] == "edge"]
        enter = [j for j in into[header] if edges[j][1] < header or edges[j][1] > src]
        put(ub, len(ub_b), back + enter, [1.0] * len(back) + [-MAX_TRIPS] * len(enter))
        ub_b.append(MAX_TRIPS if header == 0 else 0.0)
    cost = np.zeros(nv)
    for i, a in enumerate(anchors):
        cost[ne + 2 * i: ne + 2 * i + 2] = 1.0 / max(abs(a.value), 1e-9)
    cost[ne + 2 * na:] = PRIOR
    for j in back_edges:  # a loop no anchor reaches turns as little as the flow allows
        cost[j] = PRIOR
    for j in skips:  # the unlikely side of guards, early exits and slow paths
        cost[j] = PRIOR
    A_eq = coo_matrix((eq[2], (eq[0], eq[1])), shape=(len(eq_b), nv)).tocsr()
    A_ub = coo_matrix((ub[2], (ub[0], ub[1])), shape=(len(ub_b), nv)).tocsr() if ub_b else None
    res = linprog(cost, A_ub=A_ub, b_ub=np.array(ub_b) if ub_b else None, A_eq=A_eq,
                  b_eq=np.array(eq_b), bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"{f.name}: block counts have no solution ({res.message})")
    x = res.x
    counts = np.array([sum(x[j] for j in into[b]) + (1.0 if b == 0 else 0.0) for b in range(nb)])
    residuals = {}
    for a in anchors:
        hi = sum(c * counts[b] for b, c in a.coeff.items())
        lo = sum(c * counts[b] for b, c in (a.coeff if a.sure is None else a.sure).items())
        miss = (hi - a.value) if hi < a.value else (lo - a.value) if lo > a.value else 0.0
        residuals[a.name] = miss / a.value if a.value else miss
    anchored = {b for a in anchors for b in a.coeff}
    free = []
    for src, header in loops(f):
        if not anchored.intersection(range(header, src + 1)):
            free.append(f.blocks[header].instrs[0].source)
    return FlowResult(counts, residuals, free)
