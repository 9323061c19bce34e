"""Relative position bias of local attention, indexed by the true key - query offset.

Along one axis a query at ``o`` reads at tap ``k`` the key at
``i(o, k) = start(o) + k * d`` (docs/design.md section 3). Its offset, in units
of the dilation, is

    delta(o, k) = (i(o, k) - o) / d        in [-(K - 1), K - 1]

(an exact division: ``i(o, k)`` and ``o`` lie in the same dilation group).
Away from the border of a neighborhood window ``delta = k - K // 2``, but at
the border the window is shifted inside the image and ``delta`` is *not* a
function of the tap alone; in a block it is ``k - o mod K``. The learnable
table has ``(2Kh - 1) * (2Kw - 1)`` rows (one per 2-D offset) and one column
per head, and the bias of head ``h`` is

    B[h, kh, kw, y, x] = table[(delta_h + Kh - 1) * (2Kw - 1) + (delta_w + Kw - 1), h]

(Swin's ``relative_position_bias_table`` layout; Swin's own index counts
query - key, so a Swin table reads here with its rows reversed.)

Example::

    >>> from localconn.geometry import make_geometry
    >>> geo = make_geometry((5, 5), (3, 3), window="neighborhood")
    >>> relative_offsets(geo.h, torch.device("cpu"))
    tensor([[ 0, -1, -1, -1, -2],
            [ 1,  0,  0,  0, -1],
            [ 2,  1,  1,  1,  0]])
"""

from __future__ import annotations

import torch

from .attention_masks import key_positions
from .geometry import Axis


def relative_offsets(axis: Axis, device: torch.device) -> torch.Tensor:
    """``(K, L)`` int64 table of ``delta(o, k) = (i(o, k) - o) / d``."""
    o = torch.arange(axis.out_size, device=device)
    return torch.div(key_positions(axis, device) - o[None, :], axis.dilation, rounding_mode="floor")


def relative_position_index(axes: tuple[Axis, Axis], device: torch.device) -> torch.Tensor:
    """``(Kh, Kw, H, W)`` int64 row of the bias table for each tap and query."""
    Kh, Kw = axes[0].kernel, axes[1].kernel
    dh = relative_offsets(axes[0], device) + (Kh - 1)
    dw = relative_offsets(axes[1], device) + (Kw - 1)
    return dh[:, None, :, None] * (2 * Kw - 1) + dw[None, :, None, :]


def table_rows(kernel: tuple[int, int]) -> int:
    """Number of rows of the bias table: ``(2Kh - 1) * (2Kw - 1)``."""
    return (2 * kernel[0] - 1) * (2 * kernel[1] - 1)


def relative_position_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(heads, Kh, Kw, H, W)`` bias from a ``(rows, heads)`` table and a ``(Kh, Kw, H, W)`` index."""
    return table[index].permute(4, 0, 1, 2, 3)
