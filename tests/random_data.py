"""Seeded random inputs and parameters for the tests (never zeros, never default init)."""

from __future__ import annotations

import torch
from torch import nn


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Seeded standard-normal tensor (never zeros)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter with random values (no zeros, no default init).

    BatchNorm affine parameters stay near (1, 0) so that the generators' ReLUs are
    not all dead (a dead generator would make a dynamic layer static).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in module.modules():
            for name, p in mod.named_parameters(recurse=False):
                r = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    p.copy_(1 + 0.2 * r if name == "weight" else 0.1 * r)
                else:
                    p.copy_(0.5 * r)
    return module
