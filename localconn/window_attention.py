"""Multi-head local attention on images, fused where the fused kernels run.

:func:`window_attention` is the one entry point of local attention's
``softmax(scale q . k + bias, masked) v`` over a window, for
``LocalAttention2d`` and NATTEN's ``na2d``: on ``(B, heads * D, H, W)`` images
``q``, ``k`` and ``v`` (any strides) and, per head ``h`` and query ``o``::

    L[o, k] = scale * q_h[o] . k_h[i(o, k)] + rpb[h, delta_h + Kh - 1, delta_w + Kw - 1]
    out_h[o] = sum_k softmax_k(L[o, :]) v_h[i(o, k)]       (masked taps excluded)

with the windows of docs/design.md section 3 (``i(o, k) = start(o) + k * d``,
``delta`` the true key - query offset per axis) and their masks
(:mod:`localconn.attention_masks`):

* ``"neighborhood"`` (dilation, any kernel), ``"block"`` (Swin; ``shift``
  selects Swin's region mask: the image must already be rolled by ``-shift``),
  ``"sliding"`` (``K // 2 * d`` before the query, taps outside the image
  masked), and ``"causal"`` (the ``K`` keys up to the query of its dilation
  group along both axes, those before the image masked).

The fused kernels (:mod:`localconn.fused_attention`) take every window; the
unfused path runs :func:`~localconn.local_corr2d`, a float32 softmax and
:func:`~localconn.local_conn2d` (the executable spec, and the path of every
backend, dtype and device).

Example::

    >>> x = torch.randn(1, 8, 9, 9)
    >>> window_attention(x, x, x, 2, (3, 3), (1, 1), scale=0.5).shape
    torch.Size([1, 8, 9, 9])
"""

from __future__ import annotations

from typing import Optional, Union

import torch.nn.functional as F
from torch import Tensor

from .attention_masks import allowed_taps, attention_axes, window_softmax
from .functional import local_conn2d, local_corr2d
from .fused_attention import fused_arg, fused_impl, fused_unavailable, window_attention_op
from .geometry import Axis
from .relative_position import relative_position_bias, relative_position_index

#: window_attention's windows
WINDOWS = ("neighborhood", "block", "sliding", "causal")


def attention_window_axes(window: str, size: tuple[int, int], kernel: tuple[int, int],
                          dilation: tuple[int, int]) -> tuple[Axis, Axis]:
    """The two axes of ``window`` on a ``size`` image: those of
    :func:`~localconn.attention_masks.attention_axes`, and for ``"causal"`` a sliding window
    whose ``(K - 1) d`` padding is all before the image."""
    if window != "causal":
        return attention_axes(window, size, kernel, dilation)
    h, w = (Axis("sliding", L, L, K, 1, (K - 1) * d, 0, d)
            for L, K, d in zip(size, kernel, dilation))
    return h, w


def _padded(t: Tensor, axes: tuple[Axis, Axis], window: str) -> tuple[Tensor, object]:
    """``t`` and the primitives' ``padding`` for ``window``: a sliding window's even padding
    is the primitives' own (no copy), uneven padding (even kernels, causal) is ``F.pad``."""
    if window not in ("sliding", "causal"):
        return t, 0
    h, w = axes
    if h.pad_begin == h.pad_end and w.pad_begin == w.pad_end:
        return t, (h.pad_begin, w.pad_begin)
    return F.pad(t, [w.pad_begin, w.pad_end, h.pad_begin, h.pad_end]), 0


def _primitive_kwargs(window: str, dilation: tuple[int, int], padding: object,
                      backend: Optional[str]) -> dict:
    if window == "block":
        return {"window": "block", "backend": backend}
    if window in ("sliding", "causal"):
        return {"window": "sliding", "padding": padding, "dilation": dilation,
                "backend": backend}
    return {"window": window, "dilation": dilation, "backend": backend}


def window_logits(qc: Tensor, kc: Tensor, heads: int, kernel: tuple[int, int],
                  dilation: tuple[int, int], window: str = "neighborhood",
                  shift: tuple[int, int] = (0, 0), rpb: Optional[Tensor] = None,
                  backend: Optional[str] = None,
                  tables: Optional[tuple[Optional[Tensor], Optional[Tensor]]] = None,
                  ) -> tuple[Tensor, Optional[Tensor]]:
    """``(B, heads, Kh, Kw, H, W)`` logits ``qc . kc + rpb`` (unscaled) and the mask of the
    excluded taps (``None`` if none is), through :func:`~localconn.local_corr2d`.

    ``tables``: the ``(Kh, Kw, H, W)`` bias index and excluded-tap mask when the caller
    keeps them (``LocalAttention2d`` caches them per input size); built here otherwise.
    """
    B, _, H, W = qc.shape
    axes = attention_window_axes(window, (H, W), kernel, dilation)
    if tables is None:
        allowed = allowed_taps(axes, shift, qc.device)
        index = relative_position_index(axes, qc.device) if rpb is not None else None
        tables = (index, None if allowed is None else ~allowed)
    kc, padding = _padded(kc, axes, window)
    logits = local_corr2d(qc, kc, (B, heads, kernel[0], kernel[1], H, W),
                          **_primitive_kwargs(window, dilation, padding, backend))
    if rpb is not None:  # NATTEN's (heads, 2Kh - 1, 2Kw - 1) is the (rows, heads) table's .T
        logits = logits + relative_position_bias(rpb.flatten(1).T, tables[0]).to(logits.dtype)
    return logits, tables[1]


def window_aggregate(attn: Tensor, vc: Tensor, kernel: tuple[int, int],
                     dilation: tuple[int, int], window: str = "neighborhood",
                     backend: Optional[str] = None) -> Tensor:
    """``local_conn2d`` of ``(B, heads * Dv, H, W)`` values with a ``(B, heads, Kh, Kw, H, W)``
    map over ``window``."""
    axes = attention_window_axes(window, tuple(vc.shape[2:]), kernel, dilation)
    vc, padding = _padded(vc, axes, window)
    return local_conn2d(vc, attn, **_primitive_kwargs(window, dilation, padding, backend))


def _unfused(qc: Tensor, kc: Tensor, vc: Tensor, rpb: Optional[Tensor], heads: int,
             kernel: tuple[int, int], dilation: tuple[int, int], window: str,
             shift: tuple[int, int], scale: float, backend: Optional[str]) -> Tensor:
    """The unfused path: ``local_corr2d``, the masked float32 softmax, ``local_conn2d``."""
    logits, excluded = window_logits(qc * scale, kc, heads, kernel, dilation, window, shift,
                                     rpb, backend)
    attn = window_softmax(logits, excluded).to(vc.dtype)
    return window_aggregate(attn, vc, kernel, dilation, window, backend)


def window_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    heads: int,
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    *,
    window: str = "neighborhood",
    shift: tuple[int, int] = (0, 0),
    rpb: Optional[Tensor] = None,
    scale: float,
    backend: Optional[str] = None,
    fused: Union[bool, str, None] = "auto",
) -> Tensor:
    """Local attention on ``(B, heads * D, H, W)`` images (validated arguments; see the module
    docstring): ``(B, heads * Dv, H, W)``.

    Args:
        q, k, v: the images (``v`` may have another head dim).
        heads, kernel, dilation: resolved (``dilation`` (1, 1) for ``"block"``).
        window, shift: one of :data:`WINDOWS`; Swin's shift for ``"block"``.
        rpb: ``(heads, 2Kh - 1, 2Kw - 1)`` relative position bias.
        scale: the logit scale.
        backend: for the primitives (``"triton"`` or ``None`` allow the fused kernels).
        fused: ``"auto"``: fused where the kernels run; ``True``: fused or ``ValueError``
            saying why not; ``False``: the primitives.
    """
    fused = fused_arg(fused)
    # the window's geometry, validated for every path (ValueError: e.g. an image smaller
    # than a dilated neighborhood), before a fused kernel could meet it
    attention_window_axes(window, (q.shape[2], q.shape[3]), kernel, dilation)
    why = None if fused is False else fused_unavailable(q, v, heads, backend, rpb,
                                                        auto=fused is None)
    if fused is not False and why is None:
        return window_attention_op(q, k, v, rpb, heads, kernel, dilation, window, shift,
                                   scale, fused_impl(q, backend))[0]
    if fused:
        raise ValueError(f"fused=True, but the fused kernel cannot run this call: {why}")
    return _unfused(q, k, v, rpb, heads, kernel, dilation, window, shift, scale, backend)
