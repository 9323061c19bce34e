"""The CPU's fused local attention: the ops ``localconn_cpu::attention`` and
``::attention_backward`` (``csrc/cpu/attention.h``), for :mod:`localconn.fused_attention`.

``out = softmax(scale * q . k + rpb) v`` over every window of
:func:`~localconn.window_attention.window_attention`, one query at a time, vectorised along
the head dim: the softmax over a query's window lives in registers and a scratch of
``Kh * Kw`` floats, never in a ``(B, heads, Kh, Kw, H, W)`` map. The backward recomputes the
probabilities from the saved log-sum-exp (flash-attention's), one task per (batch, head,
dilation group), so it is deterministic: no atomics, every sum in a fixed order (the bias
gradient's per-task partial sums are added here in a fixed order).

The kernels take float32 channels_last images: other dtypes and layouts are converted here
(one copy of q, k and v each, float32 accumulation for 16-bit inputs) and the results
converted back to the inputs' dtypes and layouts.

Example::

    >>> q = torch.randn(1, 8, 9, 9)
    >>> out, lse = forward(q, q, q, None, 2, (3, 3), (1, 1), "neighborhood", (0, 0), 0.5)
    >>> out.shape, lse.shape
    (torch.Size([1, 8, 9, 9]), torch.Size([1, 2, 9, 9]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from . import cpu_backend
from .fused_attention import WINDOW_CODES
from .reference import memory_format_of

#: dtypes the kernels take (converted to float32; float64 runs the unfused primitives)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def empty(*size: Any, **kwargs: Any) -> Tensor:
    """``torch.empty``: every output comes from here (tests fill it with NaN)."""
    return torch.empty(*size, **kwargs)


def _planes(t: Tensor) -> bool:
    """``t`` has contiguous ``H x W`` planes (NCHW, or channel slices of it)."""
    return (t.stride(3) == 1 or t.shape[3] == 1) and (t.stride(2) == t.shape[3] or
                                                      t.shape[2] == 1)


def _f32(t: Tensor) -> Tensor:
    """``t`` as a contiguous float32 channels_last image (itself when it is one)."""
    if t.dtype == torch.float32 and t.is_contiguous(memory_format=torch.channels_last):
        return t
    if _planes(t) and t.numel():  # the extension's tiled transpose (ATen's is elementwise)
        out = torch.empty(t.shape, dtype=torch.float32, memory_format=torch.channels_last)
        torch.ops.localconn_cpu.pixel_major(t, out)
        return out
    return t.to(torch.float32).contiguous(memory_format=torch.channels_last)


def _image(shape: Sequence[int]) -> Tensor:
    return empty(tuple(shape), dtype=torch.float32, memory_format=torch.channels_last)


def _like(t: Tensor, like: Tensor) -> Tensor:
    """The float32 channels_last ``t`` in ``like``'s dtype and layout."""
    fmt = memory_format_of(like)
    if fmt == torch.contiguous_format and t.numel():
        out = torch.empty(t.shape, dtype=like.dtype)
        torch.ops.localconn_cpu.planar(t, out)
        return out
    return t.to(like.dtype).contiguous(memory_format=fmt)


def _meta(q: Tensor, v: Tensor, heads: int, kernel: Sequence[int], dilation: Sequence[int],
          window: str, shift: Sequence[int]) -> list[int]:
    B, C, H, W = q.shape
    return [B, H, W, heads, C // heads, v.shape[1] // heads, int(kernel[0]), int(kernel[1]),
            int(dilation[0]), int(dilation[1]), WINDOW_CODES[window], int(shift[0]),
            int(shift[1])]


def forward(q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], heads: int,
            kernel: Sequence[int], dilation: Sequence[int], window: str, shift: Sequence[int],
            scale: float) -> tuple[Tensor, Tensor]:
    """``out`` (``v``'s dtype, shape and layout) and the float32 log-sum-exp
    ``(B, heads, H, W)`` of attention on ``(B, heads * D, H, W)`` CPU images."""
    cpu_backend.extension()
    B, _, H, W = q.shape
    out = _image(v.shape)
    lse = empty((B, heads, H, W), dtype=torch.float32)
    torch.ops.localconn_cpu.attention(
        _f32(q), _f32(k), _f32(v), None if rpb is None else rpb.float().contiguous(), out, lse,
        _meta(q, v, heads, kernel, dilation, window, shift), float(scale))
    return _like(out, v), lse


def backward(q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], out: Tensor, lse: Tensor,
             dout: Tensor, heads: int, kernel: Sequence[int], dilation: Sequence[int],
             window: str, shift: Sequence[int], scale: float, rpb_grad: bool,
             ) -> tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """dq, dk, dv (each in its input's dtype and layout) and, with ``rpb_grad``, the float32
    gradient of ``rpb`` (else ``None``) of :func:`forward`."""
    cpu_backend.extension()
    meta = _meta(q, v, heads, kernel, dilation, window, shift)
    grads = [_image(t.shape) for t in (q, k, v)]
    drpb = (empty((q.shape[0] * meta[8] * meta[9], *rpb.shape), dtype=torch.float32)
            if rpb_grad else torch.empty(0))
    torch.ops.localconn_cpu.attention_backward(
        _f32(q), _f32(k), _f32(v), None if rpb is None else rpb.float().contiguous(),
        _f32(out), lse.contiguous(), _f32(dout), *grads, drpb, meta, float(scale))
    dq, dk, dv = (_like(g, t) for g, t in zip(grads, (q, k, v)))
    return dq, dk, dv, drpb.sum(0) if rpb_grad else None
