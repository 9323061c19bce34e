"""The spatial layers as the original code wrote them, for comparison with localconn.

``create(name, layers="torch")`` builds a DWNet with these instead of
:class:`~localconn.LocalConn2d`; everything else (and every parameter name
and shape) is the same, so one model's ``state_dict`` loads into the other
and both compute the same function:

* static depth-wise: ``nn.Conv2d(C, C, K, padding=K // 2, groups=C)``
  (official DWNet code);
* dynamic depth-wise: :class:`BatchFoldDynamicDWConv`, the official
  ``DynamicDWConv``: per-sample filters from the global-pool generator,
  applied as one grouped convolution over the batch folded into channels,
  ``x.view(1, N*C, H, W)`` with ``groups = N*C``;
* inhomogeneous dynamic (channel-shared, per position):
  :class:`UnfoldInhomogeneousDWConv`, the ``F.unfold`` (im2col) formulation
  ``y[n, c, o] = sum_k unfold(x)[n, c, k, o] * W[n, g(c), k, o]`` (the official
  code used a CuPy kernel that runs on CUDA only).

The generators are localconn's (:mod:`localconn.generators`: pool/1x1 conv/
BatchNorm/ReLU/1x1 conv, the paper's), so only the aggregation differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..generators import GlobalWeightGenerator, PositionWeightGenerator


def depthwise_conv(dim: int, kernel_size: int) -> nn.Conv2d:
    """``nn.Conv2d(dim, dim, K, padding=K // 2, groups=dim)`` (state dict = static ``LocalConn2d``).

    Example::

        >>> depthwise_conv(8, 7)(torch.randn(1, 8, 14, 14)).shape
        torch.Size([1, 8, 14, 14])
    """
    return nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)


class BatchFoldDynamicDWConv(nn.Module):
    """Dynamic depth-wise conv as the official DWNet code computes it.

    ``W = generator(x)`` of shape ``(N, C, K, K)``, then
    ``y = conv2d(x.view(1, N*C, H, W), W.view(N*C, 1, K, K), bias.repeat(N), groups=N*C)``.
    Parameters as ``LocalConn2d(C, K, dynamic=True)``: ``generator.*`` and ``bias``.

    Example::

        >>> BatchFoldDynamicDWConv(8, 7)(torch.randn(2, 8, 14, 14)).shape
        torch.Size([2, 8, 14, 14])
    """

    def __init__(self, dim: int, kernel_size: int, reduction: int = 4) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.generator = GlobalWeightGenerator(dim, (kernel_size, kernel_size), reduction)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        K = self.kernel_size
        weight = self.generator(x).reshape(N * C, 1, K, K)
        y = F.conv2d(
            x.reshape(1, N * C, H, W), weight, self.bias.repeat(N), padding=K // 2, groups=N * C
        )
        return y.view(N, C, H, W)


class UnfoldInhomogeneousDWConv(nn.Module):
    """Inhomogeneous dynamic depth-wise conv (involution-style) by ``F.unfold``.

    ``W = generator(x)`` of shape ``(N, G, K, K, H, W)`` (one filter per
    position, shared by the ``C / G`` channels of each group), then
    ``y[n, c, o] = sum_k unfold(x, K, padding=K // 2)[n, c, k, o] * W[n, c // (C/G), k, o]``.
    No bias. Parameters as ``LocalConn2d(C, K, share="channel", groups=G,
    dynamic=True, bias=False)``: ``generator.*``.

    Example::

        >>> UnfoldInhomogeneousDWConv(8, 7, groups=2)(torch.randn(2, 8, 14, 14)).shape
        torch.Size([2, 8, 14, 14])
    """

    def __init__(self, dim: int, kernel_size: int, groups: int, reduction: int = 4) -> None:
        super().__init__()
        if dim % groups:
            raise ValueError(f"groups must be a divisor of channels={dim}, got {groups!r}")
        self.kernel_size, self.groups = kernel_size, groups
        k = (kernel_size, kernel_size)
        self.generator = PositionWeightGenerator(dim, groups, k, reduction)

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        K, G = self.kernel_size, self.groups
        weight = self.generator(x).reshape(N, G, 1, K * K, H, W)
        cols = F.unfold(x, K, padding=K // 2).view(N, G, C // G, K * K, H, W)
        return (cols * weight).sum(dim=3).view(N, C, H, W)
