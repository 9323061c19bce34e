"""FlexAttention with the 2-D neighborhood (NATTEN) or Swin block mask.

Tokens are the ``H*W`` positions in raster order; head ``h`` holds
channels ``h*d .. (h+1)*d - 1`` (``d = C / heads``), as localconn's
groups do. For a query at ``(qh, qw)`` the key window starts at
``clamp(qh - K//2, 0, H - K)`` (and likewise along ``w``) and is ``K``
long: the clamped neighborhood window of docs/design.md section 3 (dilation 1).
The default scale ``1/sqrt(d)`` is the one the unfused attention uses.

The ``(N, C, H, W)`` tensors are reshaped to ``(N, heads, H*W, d)`` inside
the timed function (a view for channels_last inputs, a copy for NCHW),
as a user of FlexAttention with image-shaped tensors would have to.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .cases import Case
from .workload import Fn


def flex_unavailable() -> Optional[str]:
    """None if ``torch.nn.attention.flex_attention`` imports, else why not."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the installed torch
        return f"unavailable: torch {torch.__version__} has no FlexAttention ({e})"
    return None


def neighborhood_mask_mod(H: int, W: int, K: int) -> Callable:
    """``mask_mod(b, h, q_idx, kv_idx)``: key inside the query's clamped K x K window."""

    def mask_mod(b, h, q_idx, kv_idx):
        qh, qw = q_idx // W, q_idx % W
        kh, kw = kv_idx // W, kv_idx % W
        h0 = torch.clamp(qh - K // 2, 0, H - K)
        w0 = torch.clamp(qw - K // 2, 0, W - K)
        return (kh >= h0) & (kh < h0 + K) & (kw >= w0) & (kw < w0 + K)

    return mask_mod


def block_mask_mod(K: int, W: int) -> Callable:
    """``mask_mod``: key in the query's ``K x K`` block (Swin's windows, no shift)."""

    def mask_mod(b, h, q_idx, kv_idx):
        return ((q_idx // W) // K == (kv_idx // W) // K) & ((q_idx % W) // K == (kv_idx % W) // K)

    return mask_mod


def flex_attention_op(case: Case, device: torch.device, compile: bool = True) -> Fn:
    """``f(q, k, v) -> y`` for the case: FlexAttention with the case's window as block mask."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from .compiled_reference import configure_dynamo

    configure_dynamo()

    N, C, H, W = case.shape
    heads, L = case.cw, H * W
    d = C // heads
    mod = (block_mask_mod(case.kernel, W) if case.window == "block"
           else neighborhood_mask_mod(H, W, case.kernel))
    mask = create_block_mask(mod, B=None, H=None, Q_LEN=L, KV_LEN=L, device=device)
    attend = torch.compile(flex_attention, dynamic=False) if compile else flex_attention

    def tokens(t: torch.Tensor) -> torch.Tensor:
        # (N, C, H, W) -> (N, heads, L, d)
        return t.reshape(N, heads, d, L).transpose(2, 3)

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        y = attend(tokens(q), tokens(k), tokens(v), block_mask=mask)
        return y.transpose(2, 3).reshape(N, C, H, W)

    return attention
