"""The fused attention kernels (Triton) of the ``attention`` suite: SASS, counts, bytes.

The launch code of ``localconn.triton_kernels.launch`` (``neighborhood_attention_launch``,
``neighborhood_attention_backward_launch``) runs on ``meta`` tensors of the case's
shapes and layout (``nchw``: q, k, v as the channel slices of LocalAttention2d's qkv
output; ``channels_last``: na2d's heads-last tensors); each kernel is compiled for
sm_90 with the JIT's specialisation (:mod:`perfmodel.triton_jit`).

Block counts are pinned by the kernels' tensor-core work, which the host knows
exactly: a program walks ``ceil(rows / KBH) * ceil(cols / KBW)`` key blocks (the
halo of its tile's windows, replayed here for every tile of every dilation
group: border tiles walk fewer), each doing ``BM * BN`` times ``BD + BDV``
multiply-adds (forward: ``q . k``, ``p . v``), ``2 BD + BDV`` (dq kernel: ``q . k``,
``dout . v``, ``ds . k``) or ``2 (BD + BDV)`` (dk / dv kernel); HGMMA and FFMA
(float32's exact dot) instructions carry their multiply-adds per lane.

DRAM: the forward reads q, k, v once and writes the output and the log-sum-exp
(the halo's re-reads are taken to hit L2); the backward's ``delta = dout . out``
(PyTorch) reads dout and out, then each kernel reads q, k, v, dout, lse and delta
and writes its gradients.
"""

from __future__ import annotations

from typing import Any

import torch
import triton

from . import cubin as cubin_mod
from .counts import count
from .flow import Anchor, solve
from .predict import KernelCost
from .triton_jit import compile_jit
from .workload import Work, elem


def _blocks(L: int, d: int, K: int, B: int, window: str, queries: bool,
            tile: int = 8) -> list[int]:
    """Per tile along one axis (every dilation group): key (or, ``queries``, query) blocks of
    size ``B`` its halo spans, as the kernels compute it."""
    out = []
    def start(i: int, Lg: int) -> int:
        if window == "causal":
            return i - (K - 1)
        if window == "sliding":
            return i - K // 2
        if window == "block":
            return (i // K) * K
        return min(max(i - K // 2, 0), Lg - K)

    for g in range(d):
        Lg = (L - g + d - 1) // d
        for i0 in range(0, Lg, tile):
            last = min(i0 + tile, Lg) - 1
            if queries:  # attention._query_range
                if window == "causal":
                    lo, hi = i0, last + K
                elif window == "sliding":
                    lo, hi = i0 - (K - 1 - K // 2), last + K // 2 + 1
                elif window == "block":
                    lo, hi = (i0 // K) * K, (last // K) * K + K
                else:
                    lo = i0 - (K - 1 - K // 2) if i0 >= K else 0
                    hi = Lg if last >= Lg - K else last + K // 2 + 1
                lo, hi = max(lo, 0), min(hi, Lg)
            else:
                lo, hi = max(start(i0, Lg), 0), min(start(last, Lg) + K, Lg)
            out.append(max(0, -(-(hi - lo) // B)))
    return out


def _mean_blocks(H: int, W: int, dil: tuple[int, int], kernel: tuple[int, int], meta: dict,
                 window: str, queries: bool) -> float:
    """Key (query) blocks per program, averaged over the grid's programs that run."""
    bh, bw = ("QBH", "QBW") if queries else ("KBH", "KBW")
    rows = _blocks(H, dil[0], kernel[0], meta[bh], window, queries, meta["BH"])
    cols = _blocks(W, dil[1], kernel[1], meta[bw], window, queries, meta["BW"])
    return (sum(rows) / len(rows)) * (sum(cols) / len(cols))


def _macs_per_lane(ins: Any) -> float:
    if ins.cls == "tensor":
        return ins.mma_macs / 32
    return float(ins.fma_lanes)


def _cost(name: str, fn: Any, args: dict, meta: dict, programs: int, macs_per_program: float,
          dram: float) -> KernelCost:
    compiled = compile_jit(fn, args, meta, fn.fn.__name__)
    k = next(iter(cubin_mod.kernels(compiled.cubin).values()))
    threads = 32 * compiled.num_warps
    coeff = {b.index: float(sum(_macs_per_lane(i) for i in b.instrs)) for b in k.code.blocks}
    coeff = {b: c for b, c in coeff.items() if c}
    anchor = Anchor("multiply-adds per lane", coeff, macs_per_program / threads)
    flow = solve(k.code, [anchor])
    notes = []
    if abs(flow.residuals[anchor.name]) > 0.05:
        notes.append(f"multiply-add anchor off by {flow.residuals[anchor.name]:+.0%}")
    return KernelCost(name=f"triton {name} 8x8 w{compiled.num_warps}", blocks=programs,
                      threads=threads, registers=k.resources.registers,
                      smem=max(compiled.shared, k.resources.shared), stack=k.resources.stack,
                      counts=count(k.code, flow.counts, {}), dram_bytes=dram, notes=notes)


def _images(work: Work) -> tuple[torch.Tensor, ...]:
    """q, k, v, out (meta) in the work's layout: channel slices of a ``(B, 3C, H, W)`` NCHW
    qkv output, or heads-last (channels_last) tensors."""
    B, C, H, W = work.case.shape
    dt = getattr(torch, work.dtype)
    if work.layout == "channels_last":
        return tuple(torch.empty(B, H, W, C, dtype=dt, device="meta").permute(0, 3, 1, 2)
                     for _ in range(4))
    qkv = torch.empty(B, 3 * C, H, W, dtype=dt, device="meta")
    return (*qkv.chunk(3, dim=1), torch.empty(B, C, H, W, dtype=dt, device="meta"))


def kernel_costs(work: Work) -> list[KernelCost]:
    """The fused kernels of ``work`` (the attention case, ``fwd`` or ``bwd``)."""
    from localconn.triton_kernels import launch

    case = work.case
    B, C, H, W = case.shape
    heads, kernel, dil, window = case.cw, (case.kernel, case.kernel), (1, 1), case.window
    q, k, v, out = _images(work)
    lse = torch.empty(B, heads, H, W, device="meta")
    scale = case.scale
    image = float(elem(work.dtype) * B * C * H * W)
    stats = float(4 * B * heads * H * W)
    if work.direction == "fwd":
        grid, args, meta = launch.neighborhood_attention_launch(
            q, k, v, None, out, lse, heads, kernel, dil, window, (0, 0), scale)
        per_block = meta["BH"] * meta["BW"] * meta["KBH"] * meta["KBW"] * (meta["BD"] + meta["BDV"])
        macs = per_block * _mean_blocks(H, W, dil, kernel, meta, window, False)
        return [_cost("window_attention", launch.na_fwd_kernel, args, meta,
                      _programs(grid, H, W, dil, meta), macs, 4 * image + stats)]
    kernels = [KernelCost("torch delta = dout . out", 0, 0, dram_bytes=2 * image + stats)]
    launches = launch.neighborhood_attention_backward_launch(
        q, k, v, None, out, lse, lse, q, k, v, None, heads, kernel, dil, window, (0, 0), scale)
    for fn, grid, args, meta in launches:
        dq = fn is launch.na_bwd_dq_kernel
        bm = meta["BH"] * meta["BW"]
        if dq:
            per_block = bm * meta["KBH"] * meta["KBW"] * (2 * meta["BD"] + meta["BDV"])
        else:
            per_block = bm * meta["QBH"] * meta["QBW"] * 2 * (meta["BD"] + meta["BDV"])
        macs = per_block * _mean_blocks(H, W, dil, kernel, meta, window, not dq)
        dram = 4 * image + 2 * stats + (image if dq else 2 * image)
        kernels.append(_cost("window_attention_backward " + ("dq" if dq else "dk dv"), fn, args,
                             meta, _programs(grid, H, W, dil, meta), macs, dram))
    return kernels


def _programs(grid: tuple[int, int, int], H: int, W: int, dil: tuple[int, int],
              meta: dict) -> int:
    """Programs that run (the grid's tiles past a shorter dilation group return at once)."""
    bh, bw = meta["BH"], meta["BW"]
    return int(grid[0] * grid[1] * grid[2]) if dil == (1, 1) else int(
        sum(triton.cdiv(triton.cdiv(H - gy, dil[0]), bh) * triton.cdiv(triton.cdiv(W - gx, dil[1]), bw)
            for gy in range(dil[0]) for gx in range(dil[1])) * grid[1])
