"""Which (query, tap) pairs of a local-attention window take part in the softmax.

Along one axis of length ``L`` a query at ``o`` reads, at tap ``k``, the key
at ``i(o, k) = start(o) + k * d`` (docs/design.md section 3). The attention
windows of :class:`~localconn.LocalAttention2d` are

* ``"neighborhood"`` and ``"block"``: the windows of docs/design.md section 3;
  every tap reads a key inside the image;
* ``"sliding"``: stride 1, zero padding ``K // 2 * d`` before and
  ``(K - 1) * d - K // 2 * d`` after (symmetric for odd ``K``; for even ``K``
  the window holds ``K // 2`` taps before the query and ``K // 2 - 1`` after
  it, like the neighborhood window), so ``start(o) = o - K // 2 * d``. Taps
  with ``i(o, k)`` outside ``[0, L)`` read padding and are *masked out* of
  the softmax (they are not zero logits).

Swin's shifted windows (``"block"`` with ``shift = s > 0``) attend in the
image cyclically shifted by ``-s``, where a block may join pixels that were
not neighbours. Swin labels each position of the shifted image with a
region id, per axis ``0`` on ``[0, L - K)``, ``1`` on ``[L - K, L - s)`` and
``2`` on ``[L - s, L)`` (the slices ``(0:-K, -K:-s, -s:)``); a 2-D region is
the pair of axis ids, and a query attends only to keys of its own region.
The 2-D mask is the product of the per-axis ones.

All masks are ``(K, L)`` booleans per axis (``True`` = the tap takes part),
combined to the ``(Kh, Kw, H, W)`` layout of the logits.

Example (an 8-pixel axis, window 4, shift 2)::

    >>> swin_region_ids(8, 4, 2)
    tensor([0, 0, 0, 0, 1, 1, 2, 2])
"""

from __future__ import annotations

from typing import Optional

import torch

from .geometry import Axis, make_geometry


def attention_axes(
    window: str,
    in_size: tuple[int, int],
    kernel: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[Axis, Axis]:
    """The two :class:`~localconn.geometry.Axis` of an attention window on an ``in_size`` image.

    ``"neighborhood"``/``"block"`` are validated by
    :func:`~localconn.geometry.make_geometry` (``ValueError`` for an image
    smaller than ``K * d`` or not divisible by the block); ``"sliding"`` gets
    the padding of the module docstring, so the output keeps the input size.
    """
    if window != "sliding":
        geo = make_geometry(in_size, kernel, dilation=dilation, window=window)
        return geo.h, geo.w
    axes = []
    for L, K, d in zip(in_size, kernel, dilation):
        begin = K // 2 * d
        axes.append(Axis("sliding", L, L, K, 1, begin, (K - 1) * d - begin, d))
    return axes[0], axes[1]


def key_positions(axis: Axis, device: torch.device) -> torch.Tensor:
    """``(K, L)`` int64 table of ``i(o, k) = start(o) + k * d``, not clipped to the image."""
    o = torch.arange(axis.out_size, device=device)
    k = torch.arange(axis.kernel, device=device)
    return axis.start(o)[None, :] + k[:, None] * axis.dilation


def inside_image(axis: Axis, device: torch.device) -> torch.Tensor:
    """``(K, L)`` bool: tap ``k`` of query ``o`` reads a key inside ``[0, L)``."""
    i = key_positions(axis, device)
    return (i >= 0) & (i < axis.in_size)


def swin_region_ids(
    length: int, kernel: int, shift: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Swin's region id of each position of the shifted axis: slices ``(0:-K, -K:-s, -s:)``.

    With ``shift == 0`` there is one region (all zeros).
    """
    x = torch.arange(length, device=device)
    if not shift:
        return torch.zeros_like(x)
    # (functional, no slice assignment: export decomposes the fused op through it)
    return (x >= length - kernel).long() + (x >= length - shift).long()


def same_region(axis: Axis, shift: int, device: torch.device) -> torch.Tensor:
    """``(K, L)`` bool: the key of tap ``k`` lies in the Swin region of query ``o``."""
    ids = swin_region_ids(axis.in_size, axis.kernel, shift, device)
    keys = key_positions(axis, device)
    return ids[keys] == ids[None, :]


def combine(mask_h: torch.Tensor, mask_w: torch.Tensor) -> torch.Tensor:
    """Per-axis ``(Kh, H)`` and ``(Kw, W)`` masks -> the ``(Kh, Kw, H, W)`` mask of the logits."""
    return mask_h[:, None, :, None] & mask_w[None, :, None, :]


def allowed_taps(
    axes: tuple[Axis, Axis], shift: tuple[int, int], device: torch.device
) -> Optional[torch.Tensor]:
    """``(Kh, Kw, H, W)`` bool mask of the taps that enter the softmax, or ``None`` if all do.

    ``"sliding"``: the taps inside the image; ``"block"`` with a shift: the
    taps in the query's Swin region; otherwise ``None``.
    """
    window = axes[0].window
    if window == "sliding":
        return combine(inside_image(axes[0], device), inside_image(axes[1], device))
    if window == "block" and any(shift):
        return combine(
            same_region(axes[0], shift[0], device), same_region(axes[1], shift[1], device)
        )
    return None


def window_softmax(logits: torch.Tensor, excluded: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Softmax of ``(N, heads, Kh, Kw, H, W)`` logits over the window's taps.

    ``excluded`` (broadcast to the logits, ``True`` = out of the softmax) gets ``-inf``;
    16-bit logits are normalised in float32 and the result stays float32 (callers cast).
    ``A[n, h, kh, kw, y, x] = exp(L[.., kh, kw, y, x]) / sum_{kh', kw'} exp(L[.., kh', kw', y, x])``.

    Example::

        >>> window_softmax(torch.zeros(1, 1, 2, 2, 3, 3)).sum(dim=(2, 3)).unique()
        tensor([1.])
    """
    if excluded is not None:
        logits = logits.masked_fill(excluded, float("-inf"))
    dtype = torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else None
    return logits.flatten(2, 3).softmax(dim=2, dtype=dtype).unflatten(2, logits.shape[2:4])
