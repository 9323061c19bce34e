"""The fused neighborhood-attention path: when it runs, and its autograd.

``out = softmax(scale * q . k + rpb) v`` over the neighborhood (or causal)
window, computed by Triton's fused kernel (``triton_kernels/attention.py``:
tiles of queries, the keys of their windows' halo, online softmax in
float32, ``tl.dot`` on tensor cores): the ``(B, heads, Kh, Kw, H, W)`` map is
never stored, so the forward's memory is that of q, k, v and the output.

Backward (for now): recomputation through the unfused primitives
(``local_corr2d``, softmax, ``local_conn2d`` and their autograd), which
materialises the map during the backward only; a fused backward kernel
(flash-attention style, from the saved log-sum-exp) is still to come.

:func:`fused_unavailable` says why the fused kernel cannot run a call (the
caller then takes the unfused path, or raises with that reason when the
fused path was demanded).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import torch
from torch import Tensor

from .backends import backends

#: largest head dim of the fused kernel (its [64, D] tiles stay in registers)
MAX_HEAD_DIM = 128

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def fused_arg(fused: object) -> Optional[bool]:
    """``fused=`` as ``None`` (``"auto"`` or ``None``: where the kernel runs), ``True`` or
    ``False``; ``ValueError`` for anything else."""
    if fused is None or fused == "auto":
        return None
    if isinstance(fused, bool):
        return fused
    raise ValueError(f"fused must be 'auto', True or False, got {fused!r}")


def fused_unavailable(q: Tensor, v: Tensor, heads: int, backend: Optional[str]) -> Optional[str]:
    """``None`` if the fused kernel can compute attention on the ``(B, heads * D, H, W)``
    images ``q`` and ``v``, else why not."""
    if torch.compiler.is_compiling():
        return "torch.compile traces the unfused primitives (the fused kernel is not a custom op)"
    if backend not in (None, "auto", "triton"):
        return f"backend={backend!r}: the fused kernel is Triton's"
    if q.dtype not in _FUSED_DTYPES:
        return f"the fused kernel takes float16, bfloat16 and float32, got {q.dtype}"
    D, Dv = q.shape[1] // heads, v.shape[1] // heads
    if max(D, Dv) > MAX_HEAD_DIM:
        return f"head dims up to {MAX_HEAD_DIM}, got {D} (query) and {Dv} (value)"
    if q.device.type == "cpu":
        if backend != "triton" or os.environ.get("TRITON_INTERPRET") != "1":
            return ("CPU tensors run the fused kernel only through Triton's interpreter "
                    "(backend='triton' with TRITON_INTERPRET=1)")
    elif q.device.type != "cuda":
        return f"needs a CUDA tensor, got a {q.device.type} tensor"
    status = backends().get("triton")
    if status is None or not status.available:
        return f"the Triton backend is unavailable ({status.reason if status else 'not known'})"
    if q.device.type == "cuda" and torch.version.hip is None:
        major, minor = torch.cuda.get_device_capability(q.device)
        if major < 8:
            return f"needs compute capability >= 8.0 (16-bit tl.dot), got {major}.{minor}"
    return None


Unfused = Callable[..., Tensor]


class FusedNeighborhoodAttention(torch.autograd.Function):
    """Triton's fused forward; the backward recomputes through ``unfused`` (same arguments)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], heads: int,
                kernel: tuple[int, int], dilation: tuple[int, int], causal: bool, scale: float,
                backend: Optional[str], unfused: Unfused) -> Tensor:
        from .triton_kernels import backend as triton_backend

        out, _lse = triton_backend.neighborhood_attention(q, k, v, rpb, heads, kernel, dilation,
                                                          causal, scale)
        ctx.save_for_backward(q, k, v, rpb)
        ctx.args = (heads, kernel, dilation, causal, scale, backend)
        ctx.unfused = unfused
        return out

    @staticmethod
    def backward(ctx, dout: Tensor) -> tuple[Optional[Tensor], ...]:
        q, k, v, rpb = ctx.saved_tensors
        heads, kernel, dilation, causal, scale, backend = ctx.args
        leaves = [t.detach().requires_grad_(need) if t is not None else None
                  for t, need in zip((q, k, v, rpb), ctx.needs_input_grad[:4])]
        wanted = [t for t in leaves if t is not None and t.requires_grad]
        grads: list[Optional[Tensor]] = [None] * 4
        if wanted:
            with torch.enable_grad():
                out = ctx.unfused(leaves[0], leaves[1], leaves[2], leaves[3], heads, kernel,
                                  dilation, causal, scale, backend)
                found = iter(torch.autograd.grad(out, wanted, dout))
            grads = [next(found) if t is not None and t.requires_grad else None for t in leaves]
        return (*grads, None, None, None, None, None, None, None)
