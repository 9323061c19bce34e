"""The paper's weight generators for dynamic layers (Han et al., ICLR 2022).

* :class:`GlobalWeightGenerator` (dynamic depth-wise conv, "dynamic DWNet"):
  global average pool -> 1x1 conv ``C -> C/r`` -> BatchNorm -> ReLU -> 1x1
  conv ``C/r -> C*Kh*Kw``: one filter per sample and channel, shared across
  positions; weight ``(N, C, Kh, Kw, 1, 1)``.
* :class:`PositionWeightGenerator` (inhomogeneous dynamic DW conv,
  involution): per output position, 1x1 conv ``C -> C/r`` -> BatchNorm ->
  ReLU -> 1x1 conv ``C/r -> G*Kh*Kw``; weight ``(N, G, Kh, Kw, Ho, Wo)``.

Both return the 6-D weight of docs/design.md section 2 as a view of the last
convolution's output (no copy).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import Geometry


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
        return w.unflatten(1, (x.shape[1], *self.kernel_size))


class PositionWeightGenerator(nn.Module):
    """Per-position filters ``(N, G, Kh, Kw, H, W)``, one per position of its input.

    To generate at the output positions of a strided window, pass the input
    sampled there (:func:`sample_at_centres`).

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

    def forward(self, x: Tensor) -> Tensor:
        w = self.net(x)  # (N, G*Kh*Kw, Ho, Wo)
        return w.unflatten(1, (self.groups, *self.kernel_size))


def sample_at_centres(x: Tensor, geo: Geometry) -> Tensor:
    """``x`` at the input position each sliding window is centred on.

    Output ``o`` of an axis is centred on ``i = o * stride - pad_begin +
    dilation * (kernel - 1) // 2``, clamped into the image (replicate
    padding); the result is a strided view when no clamping is needed.

    Example::

        >>> geo = localconn.geometry.make_geometry((9, 9), (3, 3), stride=2, padding=1)
        >>> sample_at_centres(torch.randn(1, 4, 9, 9), geo).shape
        torch.Size([1, 4, 5, 5])
    """
    pads, slices = [], []
    for a in (geo.h, geo.w):
        first = a.dilation * (a.kernel - 1) // 2 - a.pad_begin
        last = first + (a.out_size - 1) * a.stride
        before, after = max(0, -first), max(0, last - (a.in_size - 1))
        pads.append((before, after))
        slices.append(slice(first + before, last + before + 1, a.stride))
    if pads != [(0, 0), (0, 0)]:
        x = F.pad(x, (*pads[1], *pads[0]), mode="replicate")
    return x[..., slices[0], slices[1]]
