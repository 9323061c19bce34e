"""The PyTorch formulations a user would otherwise write.

* :func:`conv2d_dw` - ``F.conv2d(groups=C)`` for a static depth-wise weight
  (cuDNN / the native depth-wise kernels; NCHW and channels_last inputs take
  different code paths).
* :func:`batchfold_dw` - dynamic depth-wise conv as one grouped convolution
  over the batch folded into channels: ``x`` viewed ``(1, N*C, H, W)``,
  ``groups = N*C``.
* :func:`unfold_conn` / :func:`unfold_corr` - the ``F.unfold`` (im2col)
  formulation for any weight sharing, used for channel-shared and
  position-specific weights (involution) and for attention's two steps;
  the neighborhood window is an ``index_select`` of the valid unfold at
  the clamped window starts.

Each returns ``f(*inputs) -> output`` with the same signature and result as
the localconn op of the case.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .cases import Case
from .workload import Fn


def conv2d_dw(case: Case) -> Fn:
    """``F.conv2d(x, w.view(C, 1, K, K), padding=p, groups=C)``."""
    C, K, p = case.shape[1], case.kernel, case.padding

    def conn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w.view(C, 1, K, K), padding=p, groups=C)

    return conn


def batchfold_dw(case: Case) -> Fn:
    """Dynamic depth-wise conv as a grouped conv with the batch folded into channels."""
    N, C, H, W = case.shape
    K, p = case.kernel, case.padding

    def conn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x.reshape(1, N * C, H, W), w.reshape(N * C, 1, K, K), padding=p, groups=N * C)
        return y.view(N, C, *y.shape[2:])

    return conn


def _neighborhood_index(case: Case, device: torch.device) -> torch.Tensor:
    """Flat positions of the valid unfold at the window starts: the clamped NATTEN start, or
    the block's first row / column (Swin)."""
    _, _, H, W = case.shape
    K = case.kernel
    if case.window == "block":
        hs = torch.arange(H, device=device) // K * K
        ws = torch.arange(W, device=device) // K * K
    else:
        hs = (torch.arange(H, device=device) - K // 2).clamp(0, H - K)
        ws = (torch.arange(W, device=device) - K // 2).clamp(0, W - K)
    return (hs[:, None] * (W - K + 1) + ws[None, :]).flatten()


def unfold_patches(case: Case, t: torch.Tensor, index: Optional[torch.Tensor]) -> torch.Tensor:
    """The case's window of every position: ``(N, G, C/G, K*K, Ho, Wo)``."""
    N, C, _, _ = t.shape
    G, K = case.cw, case.kernel
    Ho, Wo = case.out_size
    if case.window == "sliding":
        cols = F.unfold(t, K, padding=case.padding)
    else:
        cols = F.unfold(t, K).index_select(2, index)
    return cols.view(N, G, C // G, K * K, Ho, Wo)


def unfold_conn(case: Case, device: torch.device) -> Fn:
    """``y = sum_k unfold(x)[k] * w[k]``, broadcasting the 6-D weight."""
    index = _neighborhood_index(case, device) if case.window != "sliding" else None
    G, K = case.cw, case.kernel
    Ho, Wo = case.out_size

    def conn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        N, C = x.shape[:2]
        cols = unfold_patches(case, x, index)
        wk = w.reshape(w.shape[0], G, 1, K * K, w.shape[4], w.shape[5])
        return (cols * wk).sum(dim=3).view(N, C, Ho, Wo)

    return conn


def unfold_corr(case: Case, device: torch.device) -> Fn:
    """``w[k] = sum_{c in group} a * unfold(b)[k]`` (all weight dims are kept)."""
    index = _neighborhood_index(case, device) if case.window != "sliding" else None
    shape = case.weight_shape

    def corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        N, C = a.shape[:2]
        G = case.cw
        cols = unfold_patches(case, b, index)
        av = a.reshape(N, G, C // G, 1, *a.shape[2:])
        return (cols * av).sum(dim=2).view(shape)

    return corr
