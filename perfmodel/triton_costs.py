"""The Triton backend's kernels: each tile compiled for sm_90, its SASS, its counts.

Triton has no emulator: block counts are pinned by the one number a tile's
program is known to do, its multiply-adds (every lane of a ``[BC, BH, BW]``
or ``[BC, BT, BH, BW]`` tile does them, masked or not; counted as multiplies,
fused or not, since a masked tap compiles to FMUL + FSEL + FADD):

* ``conn_kernel``, ``conn_transpose_kernel``: ``BC*BH*BW * Kh*Kw`` per program;
* ``corr_kernel``: ``BC*BT*BH*BW`` per reduction step, ``steps / SPLITS`` steps
  per program (the kernel's own ``r_n * r_c * r_h * r_w``).

Divided by the program's threads that is the multiply-adds per lane, which
fixes the trip count of the loop that holds them (:mod:`perfmodel.flow`).
Memory accesses are taken as coalesced and shared memory as conflict-free
(Triton lays tiles out for that); both are assumptions the GPU check
measures.
"""

from __future__ import annotations

from typing import Any

import triton

from . import cubin as cubin_mod
from .counts import count
from .flow import Anchor, solve
from .predict import KernelCost
from .triton_jit import TritonLaunch, compile_tile


def macs_per_program(tl: TritonLaunch, tile: dict[str, int]) -> float:
    """Multiply-adds one program of ``tl`` does with ``tile`` (masked lanes included)."""
    a = tl.args
    taps = a["KH"] * a["KW"]
    if tl.kernel in ("conn_kernel", "conn_transpose_kernel"):
        return tile["BC"] * tile["BH"] * tile["BW"] * taps
    r_n = a["N"] if a["REDUCE_N"] else 1
    r_c = triton.cdiv(a["CPG"], tile["BC"]) if a["REDUCE_C"] else 1
    r_h = triton.cdiv(a["Ho"], tile["BH"]) if a["REDUCE_H"] else 1
    r_w = triton.cdiv(a["Wo"], tile["BW"]) if a["REDUCE_W"] else 1
    steps = r_n * r_c * r_h * r_w / a["SPLITS"]
    return tile["BC"] * tile["BT"] * tile["BH"] * tile["BW"] * steps


def tile_name(tile: dict[str, Any]) -> str:
    """E.g. ``"1x8x32 w4"``."""
    dims = "x".join(str(tile[k]) for k in ("BC", "BT", "BH", "BW") if k in tile)
    return f"{dims} w{tile.get('num_warps', 4)}"


def tile_cost(tl: TritonLaunch, tile: dict[str, int], dram_bytes: float) -> KernelCost:
    """The cost of ``tl`` run with ``tile``."""
    compiled = compile_tile(tl, tile)
    kernels = cubin_mod.kernels(compiled.cubin)
    k = next(iter(kernels.values()))
    threads = 32 * compiled.num_warps
    mul_lanes = macs_per_program(tl, tile) / threads
    coeff = {b.index: float(sum(i.mul_lanes for i in b.instrs)) for b in k.code.blocks}
    coeff = {b: c for b, c in coeff.items() if c}
    anchors = [Anchor("multiplies per lane", coeff, mul_lanes)] if coeff else []
    flow = solve(k.code, anchors)
    notes = [] if anchors else ["no multiply in the SASS: block counts are unpinned"]
    if anchors and abs(flow.residuals[anchors[0].name]) > 0.05:
        notes.append(f"multiply anchor off by {flow.residuals[anchors[0].name]:+.0%}")
    if k.resources.stack:
        notes.append(f"{k.resources.stack} B stack frame per thread (local memory)")
    return KernelCost(
        name=f"triton {tl.kernel.replace('_kernel', '')} {tile_name(tile)}",
        blocks=tl.programs(tile), threads=threads, registers=k.resources.registers,
        smem=max(compiled.shared, k.resources.shared), stack=k.resources.stack,
        counts=count(k.code, flow.counts, {}), dram_bytes=dram_bytes, notes=notes)
