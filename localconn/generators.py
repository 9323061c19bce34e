"""The paper's weight generators for dynamic layers (Han et al., ICLR 2022).

* :class:`GlobalWeightGenerator` (dynamic depth-wise conv, "dynamic DWNet"):
  global average pool -> 1x1 conv ``C -> C/r`` -> BatchNorm -> ReLU -> 1x1
  conv ``C/r -> C*Kh*Kw``: one filter per sample and channel, shared across
  positions; weight ``(N, C, Kh, Kw, 1, 1)``.
* :class:`PositionWeightGenerator` (inhomogeneous dynamic DW conv,
  involution): per output position, 1x1 conv ``C -> C/r`` -> BatchNorm ->
  ReLU -> 1x1 conv ``C/r -> G*Kh*Kw``; weight ``(N, G, Kh, Kw, Ho, Wo)``.

Both return the 6-D weight of DESIGN.md section 2 as a view of the last
convolution's output (no copy).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


def _bottleneck(channels: int, out_channels: int, reduction: int) -> nn.Sequential:
    hidden = max(1, channels // reduction)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_channels, 1),
    )


class GlobalWeightGenerator(nn.Module):
    """Per-sample filters from the globally pooled input: ``(N, C, Kh, Kw, 1, 1)``.

    Example::

        >>> GlobalWeightGenerator(16, (3, 3))(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 3, 3, 1, 1])
    """

    def __init__(self, channels: int, kernel_size: tuple[int, int], reduction: int = 4) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.net = _bottleneck(channels, channels * kernel_size[0] * kernel_size[1], reduction)

    def forward(self, x: Tensor) -> Tensor:
        w = self.net(self.pool(x))  # (N, C*Kh*Kw, 1, 1)
        return w.unflatten(1, (x.shape[1], *self.kernel_size)).unsqueeze(-1)


class PositionWeightGenerator(nn.Module):
    """Per-position filters ``(N, G, Kh, Kw, Ho, Wo)`` from the input at the output positions.

    ``sample_index`` (``(rows, cols)`` int64 tables, or ``None`` for stride 1)
    picks, for each output position, the input position its window is
    centred on; the generator runs on those samples only.

    Example::

        >>> PositionWeightGenerator(16, 4, (3, 3))(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 4, 3, 3, 8, 8])
    """

    def __init__(
        self, channels: int, groups: int, kernel_size: tuple[int, int], reduction: int = 4
    ) -> None:
        super().__init__()
        self.groups = groups
        self.kernel_size = kernel_size
        self.net = _bottleneck(channels, groups * kernel_size[0] * kernel_size[1], reduction)

    def forward(self, x: Tensor, sample_index: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        if sample_index is not None:
            rows, cols = sample_index
            x = x.index_select(2, rows).index_select(3, cols)
        w = self.net(x)  # (N, G*Kh*Kw, Ho, Wo)
        return w.unflatten(1, (self.groups, *self.kernel_size))


def centre_index(
    in_size: int,
    out_size: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    dilation: int,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Input index of the centre of each sliding window, clamped into the image.

    ``i = o * stride - pad_begin + dilation * (kernel - 1) // 2``.
    """
    o = torch.arange(out_size, device=device)
    centre = o * stride - pad_begin + (dilation * (kernel - 1)) // 2
    return centre.clamp(0, in_size - 1)
