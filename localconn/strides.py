"""Host-side facts about the tensors a compiled kernel receives: strides, layout, index width.

Shared by the compiled backends (Triton, CUDA). Nothing here copies a
tensor: the weight is passed with its own strides and stride 0 along every
dim it broadcasts (``Nw == 1``, ``Cw == 1``, ``Hw == 1``, ``Ww == 1``), so
permuted views (attention maps ``(N, G, Ho, Wo, Kh, Kw)`` passed as
``.permute(0, 1, 4, 5, 2, 3)``) and ``expand``-ed weights run as they are.
"""

from __future__ import annotations

from typing import Optional

import torch

#: offsets at or beyond this need int64 index arithmetic
INT32_LIMIT = 2**31 - 1


def weight_strides(weight: torch.Tensor) -> list[int]:
    """``(swn, swg, swkh, swkw, swh, sww)`` with 0 along the broadcast (size-1) dims.

    Example::

        >>> weight_strides(torch.empty(1, 4, 3, 3, 1, 1))
        [0, 9, 3, 1, 0, 0]
    """
    return [0 if size == 1 else stride for size, stride in zip(weight.shape, weight.stride())]


def image_strides(t: torch.Tensor) -> list[int]:
    """``(sn, sc, sh, sw)`` of an ``(N, C, H, W)`` tensor (0 along size-1 dims)."""
    return [0 if size == 1 else stride for size, stride in zip(t.shape, t.stride())]


def channels_last(t: torch.Tensor) -> bool:
    """True if channels are the contiguous dim (channels_last), so tiles run along them."""
    return t.shape[1] > 1 and t.stride(1) == 1


def span(t: torch.Tensor) -> int:
    """One past the largest element offset ``t`` addresses (0 if empty)."""
    if t.numel() == 0:
        return 0
    return 1 + sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()))


def needs_int64(*tensors: Optional[torch.Tensor], slack: int = 0) -> bool:
    """True if some tensor's offsets (plus ``slack``) reach 2^31: index in int64 then."""
    return any(t is not None and span(t) + slack >= INT32_LIMIT for t in tensors)
