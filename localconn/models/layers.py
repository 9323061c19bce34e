"""Small layers of the Swin-style skeleton on NCHW feature maps.

The models keep every feature map as ``(N, C, H, W)`` (the layout
:class:`~localconn.LocalConn2d` and :class:`~localconn.LocalAttention2d`
take); a ``channels_last`` map stays ``channels_last``. The per-token layers
(LayerNorm over channels, the MLP's ``nn.Linear``) run on the
``(N, H, W, C)`` view ``x.permute(0, 2, 3, 1)``, which is contiguous for a
``channels_last`` map, so they are plain GEMMs there, as in Swin.

* :class:`DropPath` - stochastic depth: ``x * bernoulli(1 - p) / (1 - p)`` per sample.
* :class:`LayerNorm2d` - ``nn.LayerNorm`` over the channels of each position.
* :class:`Mlp` - Swin's FFN ``fc2(drop(GELU(fc1(x))))`` per position.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def to_tokens(x: Tensor) -> Tensor:
    """``(N, C, H, W) -> (N, H, W, C)`` view (contiguous for ``channels_last``)."""
    return x.permute(0, 2, 3, 1)


def from_tokens(x: Tensor) -> Tensor:
    """``(N, H, W, C) -> (N, C, H, W)`` view (``channels_last`` if ``x`` is contiguous)."""
    return x.permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p``.

    In training, ``y[n] = x[n] * b[n] / (1 - p)`` with ``b[n] ~ Bernoulli(1 - p)``;
    in eval mode (or ``p == 0``) the identity.

    Example::

        >>> DropPath(0.1).eval()(torch.ones(2, 3)).sum().item()
        6.0
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each position of an ``(N, C, H, W)`` map.

    ``y[n, :, h, w] = (x[n, :, h, w] - mean) / sqrt(var + eps) * weight + bias``
    (Swin's ``nn.LayerNorm(C)`` on tokens; same parameters and state dict).

    Example::

        >>> LayerNorm2d(8)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(to_tokens(x), self.normalized_shape, self.weight, self.bias, self.eps)
        return from_tokens(y)


class Mlp(nn.Module):
    """Swin's FFN per position: ``fc2(drop(GELU(fc1(x))))``, hidden width ``ratio * C``.

    Example::

        >>> Mlp(8, 4.0)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, dim: int, ratio: float = 4.0, drop: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        t = self.drop(self.act(self.fc1(to_tokens(x))))
        return from_tokens(self.drop(self.fc2(t)))


def init_linear_and_norm(module: nn.Module) -> None:
    """Swin / DWNet initialisation: ``nn.Linear`` weights trunc-normal (std 0.02), bias 0;
    LayerNorm weight 1, bias 0 (apply with ``model.apply``).

    Example::

        >>> nn.Sequential(nn.Linear(4, 4), LayerNorm2d(4)).apply(init_linear_and_norm)
        Sequential(...)
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


__all__ = ["DropPath", "LayerNorm2d", "Mlp", "from_tokens", "init_linear_and_norm", "to_tokens"]
