"""The pure-PyTorch implementation of the three primitives: the executable spec.

Notation (docs/design.md sections 2-4): input ``x`` is ``(N, C, H, W)``, the weight
``W`` is ``(Nw, G, Kh, Kw, Hw, Ww)`` and broadcasts over batch, the ``C // G``
channels of each group and positions; ``i(o, k)`` is the window's input index
(:mod:`localconn.geometry`), and taps outside the image read 0::

    conn(x, W)[n, c, o]         = sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]
    conn_T(g, W)[n, c, i]       = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] * g[n, c, o]
    corr(a, b)[n', g, k, o']    = sum a[n, c, o] * b[n, c, i(o, k)]   (over broadcast dims)

Each is computed one tap ``(kh, kw)`` at a time, and each tap as a few
strided runs (:mod:`localconn.taps`): the outputs and the inputs they read
are views of the tensors, for every window (no padded copy, no index
gather, no full ``unfold``). Products accumulate in float32 (float64 for
float64 inputs), computed inside ``addcmul_`` from operands in their own
dtype (no converted copy of a bfloat16 input), and are rounded to the input
dtype at the end. Extra memory: ``conn2d`` and ``conn2d_transpose`` the
accumulator and the result (two buffers of the result's size, the first in
float32); ``corr2d`` the accumulator and one product of ``a``'s size in float32
per run (the reduction over the broadcast dims needs the products).
A tap on the zero padding adds ``W * 0`` (``a * 0`` in ``corr2d``): nothing, or
NaN where the weight is not finite, as in ``conv2d``; these are gathered on
the border rectangles of a small ``(Nw, G, Ho, Wo)`` map and added once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from .geometry import Geometry
from .taps import Run, padding_ranges, runs, view_inputs, view_outputs


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """``channels_last`` if ``t`` is (only) channels_last-contiguous, else contiguous."""
    if (
        t.dim() == 4
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``(N, C, ...)`` -> ``(N, G, C // G, ...)`` (always a view)."""
    return t.unflatten(1, (groups, t.shape[1] // groups))


def _weight_tap(weight: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """``W[:, :, kh, kw]`` as ``(Nw, G, 1, Hw, Ww)``, broadcastable over grouped tensors."""
    return weight[:, :, kh, kw].unsqueeze(2)


def _weight_view(wt: torch.Tensor, rh: Run, rw: Run) -> torch.Tensor:
    """The tap's weight at the outputs of ``(rh, rw)``: a view, or size 1 where it is shared."""
    if wt.shape[-2] == 1 and wt.shape[-1] == 1:
        return wt.unsqueeze(-1).unsqueeze(-3)
    full_h, full_w = wt.shape[-2] > 1, wt.shape[-1] > 1
    v = wt[..., rh.outputs if full_h else slice(None), rw.outputs if full_w else slice(None)]
    v = v.unflatten(-1, (rw.n, rw.rep)) if full_w else v.unsqueeze(-1)
    return v.unflatten(-3, (rh.n, rh.rep)) if full_h else v.unsqueeze(-3)


def _tap_runs(geo: Geometry, kh: int, kw: int) -> list[tuple[Run, Run]]:
    return [(rh, rw) for rh in runs(geo.h, kh) for rw in runs(geo.w, kw)]


def _padding_rectangles(geo: Geometry, kh: int, kw: int) -> list[tuple[slice, slice]]:
    """The outputs whose tap ``(kh, kw)`` reads the zero padding, as rectangles."""
    valid_h = [slice(r.o0, r.o0 + r.n) for r in runs(geo.h, kh)]
    rects = [(rows, slice(None)) for rows in padding_ranges(geo.h, kh)]
    rects += [(rows, cols) for rows in valid_h for cols in padding_ranges(geo.w, kw)]
    return rects


def conn2d(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], geo: Geometry
) -> torch.Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]``."""
    N, C = x.shape[:2]
    G, Kh, Kw = weight.shape[1], weight.shape[2], weight.shape[3]
    acc = accumulation_dtype(x.dtype)
    y = torch.empty(
        (N, C, *geo.out_size), dtype=acc, device=x.device, memory_format=memory_format_of(x)
    )
    if bias is None:
        y.zero_()
    else:
        y.copy_(bias.view(1, C, 1, 1).expand_as(y))
    yg, xg = _grouped(y, G), _grouped(x, G)
    # a tap on the zero padding adds W * 0: nothing, or NaN where W is not finite (as in
    # conv2d); gathered per (n', group, position) in `pad`, added to y once at the end.
    # Skipped when a weight no larger than the output is finite (not while tracing: no
    # data-dependent branch in a graph)
    pad_taps = (
        torch.compiler.is_compiling() or weight.numel() > y.numel()
        or not bool(torch.isfinite(weight).all())
    )
    pad = None
    for kh in range(Kh):
        for kw in range(Kw):
            wt = _weight_tap(weight, kh, kw)
            for rh, rw in _tap_runs(geo, kh, kw):
                # x stays in its dtype: the product is promoted to acc inside the kernel
                view_outputs(yg, rh, rw).addcmul_(_weight_view(wt, rh, rw), view_inputs(xg, rh, rw))
            for rows, cols in _padding_rectangles(geo, kh, kw) if pad_taps else ():
                if pad is None:
                    pad = weight.new_zeros((weight.shape[0], G, 1, *geo.out_size), dtype=acc)
                pad[..., rows, cols] += _at(wt * 0, rows, cols)
    if pad is not None:
        yg.add_(pad)
    return y.to(x.dtype)


def _at(t: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    """``t[..., rows, cols]`` where ``t`` varies along the positions (size 1 dims stay)."""
    return t[..., rows if t.shape[-2] > 1 else slice(None), cols if t.shape[-1] > 1 else slice(None)]


def conn2d_transpose(g: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] * g[n, c, o]``."""
    N, C = g.shape[:2]
    G, Kh, Kw = weight.shape[1], weight.shape[2], weight.shape[3]
    acc = accumulation_dtype(g.dtype)
    H, W = geo.in_size
    x_bar = torch.empty(
        (N, C, H, W), dtype=acc, device=g.device, memory_format=memory_format_of(g)
    ).zero_()
    xg, gg = _grouped(x_bar, G), _grouped(g, G)
    buf = None  # products of runs whose outputs share an input, reused
    for kh in range(Kh):
        for kw in range(Kw):
            wt = _weight_tap(weight, kh, kw)
            for rh, rw in _tap_runs(geo, kh, kw):
                dst = view_inputs(xg, rh, rw)
                w, src = _weight_view(wt, rh, rw), view_outputs(gg, rh, rw)
                if rh.rep == 1 and rw.rep == 1:
                    dst.addcmul_(w, src)
                    continue
                # several outputs of the run read one input: their sum lands there
                if buf is None:
                    buf = torch.empty(g.numel(), dtype=acc, device=g.device)
                prod = buf[: src.numel()].view(src.shape)
                if g.dtype == acc:
                    torch.mul(src, w, out=prod)
                else:
                    prod.copy_(src).mul_(w)
                dst.add_(prod.sum(dim=(-3, -1), keepdim=True))
    return x_bar.to(g.dtype)


def corr2d(
    a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int], geo: Geometry
) -> torch.Tensor:
    """``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]`` over the broadcast dims."""
    Nw, G, Kh, Kw, Hw, Ww = weight_shape
    acc = accumulation_dtype(a.dtype)
    ag, bg = _grouped(a, G), _grouped(b, G)
    out = torch.zeros(tuple(weight_shape), dtype=acc, device=a.device)
    buf = torch.empty(a.numel(), dtype=acc, device=a.device)  # one run's products, reused
    # a tap on the zero padding adds a * 0: nothing, or NaN where a is not finite; `zero`
    # holds a * 0 summed over the batch (static weight) and a group's channels, per position
    zero = None
    for kh in range(Kh):
        for kw in range(Kw):
            tap = out[:, :, kh, kw]  # (Nw, G, Hw, Ww)
            for rh, rw in _tap_runs(geo, kh, kw):
                # (N, G, C/G, nh, rep_h, nw, rep_w) products, in acc
                av, bv = view_outputs(ag, rh, rw), view_inputs(bg, rh, rw)
                prod = buf[: av.numel()].view(av.shape)
                if a.dtype == acc:
                    torch.mul(av, bv, out=prod)
                else:  # a in acc first: the product of two 16-bit values is exact in float32
                    prod.copy_(av).mul_(bv)
                _accumulate(tap, prod, Nw, Hw, Ww, rh, rw)
            for rows, cols in _padding_rectangles(geo, kh, kw):
                if zero is None:
                    zero = (ag * 0).sum(dim=[2] + ([0] if Nw == 1 else []), keepdim=True,
                                        dtype=acc).squeeze(2)  # (Nw, G, Ho, Wo)
                    if not torch.compiler.is_compiling() and bool(torch.isfinite(
                            zero.sum(dim=(-2, -1))).all()):
                        zero = False  # a is finite: the padding adds nothing anywhere
                if zero is False:
                    break
                part = zero[..., rows, cols]
                part = part.sum(dim=[d for d, n in ((-2, Hw), (-1, Ww)) if n == 1], keepdim=True)
                tap[..., rows if Hw > 1 else slice(None), cols if Ww > 1 else slice(None)] += part
    return out.to(a.dtype)


def _accumulate(tap: torch.Tensor, prod: torch.Tensor, Nw: int, Hw: int, Ww: int,
                rh: Run, rw: Run) -> None:
    """``tap += prod`` summed over the dims the weight broadcasts (batch, group channels,
    positions) and placed at the run's outputs where the weight is position-specific."""
    if Hw == 1 and Ww == 1:  # a weight shared across positions: one 5-D reduction
        flat = prod.flatten(5, 6).flatten(3, 4)  # (N, G, C/G, nh*reph, nw*repw), a view
        red = flat.sum(dim=[2, 3, 4] + ([0] if Nw == 1 else []), keepdim=True)
        tap += red.view(red.shape[0], red.shape[1], 1, 1)
        return
    dims = [2] + ([0] if Nw == 1 else [])
    dims += [3, 4] if Hw == 1 else []
    dims += [5, 6] if Ww == 1 else []
    red = prod.sum(dim=dims, keepdim=True).squeeze(2)  # (Nw, G, nh|1, reph|1, nw|1, repw|1)
    dst = tap
    if Hw > 1:
        dst = dst[..., rh.outputs, :].unflatten(-2, (rh.n, rh.rep))
    else:
        dst = dst.unsqueeze(-2)
    if Ww > 1:
        dst = dst[..., rw.outputs].unflatten(-1, (rw.n, rw.rep))
    else:
        dst = dst.unsqueeze(-1)
    dst += red
