"""The pure-PyTorch implementation of the three primitives: the executable spec.

Notation (DESIGN.md sections 2-4): input ``x`` is ``(N, C, H, W)``, the weight
``W`` is ``(Nw, G, Kh, Kw, Hw, Ww)`` and broadcasts over batch, the ``C // G``
channels of each group and positions; ``i(o, k)`` is the window's input index
(:mod:`localconn.geometry`), and taps outside the image read 0::

    conn(x, W)[n, c, o]         = sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]
    conn_T(g, W)[n, c, i]       = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] * g[n, c, o]
    corr(a, b)[n', g, k, o']    = sum a[n, c, o] * b[n, c, i(o, k)]   (over broadcast dims)

Each is computed one tap ``(kh, kw)`` at a time: for a sliding window the
input rows and columns a tap reads are a strided view of the zero-padded
input, for the neighborhood and block windows an ``index_select``. No
``K*K``-times copy of the input is made (no full ``unfold``); the extra
memory is about one output-sized buffer. Products accumulate in float32
(float64 for float64 inputs) and are rounded to the input dtype at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .geometry import Axis, Geometry

Selector = Union[slice, torch.Tensor]


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


class _Taps:
    """For one axis, where each tap reads in the (padded) input.

    ``pad`` is the zero padding ``(begin, end)`` to apply to the input first;
    ``select[k]`` picks the ``out_size`` input positions of tap ``k`` in the
    padded input: a strided ``slice`` for a sliding window, an index tensor
    for the neighborhood and block windows.
    """

    def __init__(self, axis: Axis, device: torch.device) -> None:
        if axis.is_affine():
            s, d, Lo = axis.stride, axis.dilation, axis.out_size
            span = (Lo - 1) * s + (axis.kernel - 1) * d + 1
            self.pad = (axis.pad_begin, max(0, span - axis.pad_begin - axis.in_size))
            self.select: list[Selector] = [
                slice(k * d, k * d + (Lo - 1) * s + 1, s) for k in range(axis.kernel)
            ]
        else:
            self.pad = (0, 0)
            self.select = list(axis.input_index(device).unbind(0))
        self.in_size = axis.in_size


def _select(t: torch.Tensor, dim: int, sel: Selector) -> torch.Tensor:
    """The positions ``sel`` of ``t`` along ``dim`` (-2 or -1): a view for a slice."""
    if isinstance(sel, slice):
        return t[..., sel, :] if dim == -2 else t[..., sel]
    return t.index_select(dim, sel)


def _scatter_add(dst: torch.Tensor, dim: int, sel: Selector, src: torch.Tensor) -> None:
    """``dst[..., sel along dim] += src`` (repeated indices accumulate)."""
    if isinstance(sel, slice):
        _select(dst, dim, sel).add_(src)
    else:
        dst.index_add_(dim, sel, src)


def _scatter_addcmul(
    dst: torch.Tensor, dim: int, sel: Selector, a: torch.Tensor, b: torch.Tensor, buf: torch.Tensor
) -> None:
    """``dst[..., sel along dim] += a * b``; ``buf`` holds the product for an index scatter."""
    if isinstance(sel, slice):
        _select(dst, dim, sel).addcmul_(a, b)
    else:
        dst.index_add_(dim, sel, torch.mul(a, b, out=buf))


def _pad(t: torch.Tensor, th: _Taps, tw: _Taps) -> torch.Tensor:
    if th.pad == (0, 0) and tw.pad == (0, 0):
        return t
    return F.pad(t, (*tw.pad, *th.pad))


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``(N, C, ...)`` -> ``(N, G, C // G, ...)`` (always a view)."""
    return t.unflatten(1, (groups, t.shape[1] // groups))


def _weight_tap(weight: torch.Tensor, kh: int, kw: int, acc: torch.dtype) -> torch.Tensor:
    """``W[:, :, kh, kw]`` as ``(Nw, G, 1, Hw, Ww)``, broadcastable over grouped tensors."""
    return weight[:, :, kh, kw].unsqueeze(2).to(acc)


def conn2d(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], geo: Geometry
) -> torch.Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]``."""
    N, C = x.shape[:2]
    G, Kh, Kw = weight.shape[1], weight.shape[2], weight.shape[3]
    acc = accumulation_dtype(x.dtype)
    th, tw = _Taps(geo.h, x.device), _Taps(geo.w, x.device)
    xp = _grouped(_pad(x.to(acc), th, tw), G)
    y = torch.empty(
        (N, C, *geo.out_size), dtype=acc, device=x.device, memory_format=memory_format_of(x)
    )
    if bias is None:
        y.zero_()
    else:
        y.copy_(bias.to(acc).view(1, C, 1, 1).expand_as(y))
    yg = _grouped(y, G)
    for kh in range(Kh):
        rows = _select(xp, -2, th.select[kh])
        for kw in range(Kw):
            yg.addcmul_(_weight_tap(weight, kh, kw, acc), _select(rows, -1, tw.select[kw]))
    return y.to(x.dtype)


def conn2d_transpose(g: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] * g[n, c, o]``."""
    N, C = g.shape[:2]
    G, Kh, Kw = weight.shape[1], weight.shape[2], weight.shape[3]
    acc = accumulation_dtype(g.dtype)
    th, tw = _Taps(geo.h, g.device), _Taps(geo.w, g.device)
    H, W = geo.in_size
    Hp, Wp = H + sum(th.pad), W + sum(tw.pad)
    xp = torch.zeros((N, C, Hp, Wp), dtype=acc, device=g.device)
    xpg = _grouped(xp, G)
    gg = _grouped(g.to(acc), G)
    row_affine = isinstance(th.select[0], slice)
    # contributions of one tap row: a view of xp (sliding) or a buffer to scatter
    rows_buf = None if row_affine else xpg.new_empty((*xpg.shape[:3], geo.out_size[0], Wp))
    prod = gg.new_empty(gg.shape)
    for kh in range(Kh):
        if row_affine:
            rows = _select(xpg, -2, th.select[kh])
        else:
            rows = rows_buf.zero_()
        for kw in range(Kw):
            wt = _weight_tap(weight, kh, kw, acc)
            _scatter_addcmul(rows, -1, tw.select[kw], gg, wt, prod)
        if not row_affine:
            _scatter_add(xpg, -2, th.select[kh], rows)
    x_bar = xp[..., th.pad[0] : th.pad[0] + H, tw.pad[0] : tw.pad[0] + W]
    out = torch.empty(
        (N, C, H, W), dtype=g.dtype, device=g.device, memory_format=memory_format_of(g)
    )
    return out.copy_(x_bar)


def corr2d(
    a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int], geo: Geometry
) -> torch.Tensor:
    """``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]`` over the broadcast dims."""
    Nw, G, Kh, Kw, Hw, Ww = weight_shape
    acc = accumulation_dtype(a.dtype)
    th, tw = _Taps(geo.h, a.device), _Taps(geo.w, a.device)
    ag = _grouped(a.to(acc), G)
    bp = _grouped(_pad(b.to(acc), th, tw), G)
    # dims of the (N, G, C/G, Ho, Wo) product that the weight broadcasts over
    dims = [2] + [d for d, n in ((0, Nw), (3, Hw), (4, Ww)) if n == 1]
    out = torch.empty(tuple(weight_shape), dtype=acc, device=a.device)
    prod = ag.new_empty(ag.shape)
    for kh in range(Kh):
        rows = _select(bp, -2, th.select[kh])
        for kw in range(Kw):
            torch.mul(ag, _select(rows, -1, tw.select[kw]), out=prod)
            out[:, :, kh, kw] = prod.sum(dim=dims, keepdim=True).squeeze(2)
    return out.to(a.dtype)
