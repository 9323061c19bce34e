"""The fused local-attention path: when it runs, and its autograd.

``out = softmax(scale * q . k + rpb) v`` over any of
:func:`~localconn.window_attention.window_attention`'s windows, computed by
Triton's fused kernel (``triton_kernels/attention.py``:
tiles of queries, the keys of their windows' halo, online softmax in
float32, ``tl.dot`` on tensor cores): the ``(B, heads, Kh, Kw, H, W)`` map is
never stored, so the forward's memory is that of q, k, v and the output.

Backward: Triton's fused backward (``triton_kernels/attention_backward.py``,
flash-attention style: the probabilities recomputed from the saved
log-sum-exp, a dq kernel over query tiles and a dk / dv kernel over key tiles,
no map in memory either). The gradient of ``rpb`` is summed with atomics
there; in deterministic mode (``torch.use_deterministic_algorithms``) a
backward that needs it recomputes through the unfused primitives instead
(``local_corr2d``, softmax, ``local_conn2d`` and their autograd:
deterministic, with the map in memory while it runs).

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


class FusedWindowAttention(torch.autograd.Function):
    """Triton's fused forward and backward (``unfused``: the recomputing fallback of the
    backward, same arguments, where the fused one does not apply)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], heads: int,
                kernel: tuple[int, int], dilation: tuple[int, int], window: str,
                shift: tuple[int, int], scale: float, backend: Optional[str],
                unfused: Unfused) -> Tensor:
        from .triton_kernels import backend as triton_backend

        out, lse = triton_backend.neighborhood_attention(q, k, v, rpb, heads, kernel, dilation,
                                                         window, shift, scale)
        ctx.save_for_backward(q, k, v, rpb, out, lse)
        ctx.args = (heads, kernel, dilation, window, shift, scale, backend)
        ctx.unfused = unfused
        return out

    @staticmethod
    def backward(ctx, dout: Tensor) -> tuple[Optional[Tensor], ...]:
        q, k, v, rpb, out, lse = ctx.saved_tensors
        heads, kernel, dilation, window, shift, scale, backend = ctx.args
        needs = ctx.needs_input_grad[:4]
        rest = (None,) * 8
        if not any(needs):
            return (None,) * 4 + rest
        rpb_grad = rpb is not None and needs[3]
        if rpb_grad and torch.are_deterministic_algorithms_enabled():
            return (*_recompute(ctx.unfused, (q, k, v, rpb), needs, dout, heads, kernel,
                                dilation, window, shift, scale, backend), *rest)
        from .triton_kernels import backend as triton_backend

        dq, dk, dv, drpb = triton_backend.neighborhood_attention_backward(
            q, k, v, rpb, out, lse, dout.contiguous(memory_format=_format(out)), heads, kernel,
            dilation, window, shift, scale, rpb_grad)
        grads = (dq, dk, dv, None if drpb is None else drpb.to(rpb.dtype))
        return (*(g if need else None for g, need in zip(grads, needs)), *rest)


def _format(t: Tensor) -> torch.memory_format:
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) and \
        not t.is_contiguous() else torch.contiguous_format


def _recompute(unfused: Unfused, inputs: tuple[Optional[Tensor], ...], needs: tuple[bool, ...],
               dout: Tensor, heads: int, kernel: tuple[int, int], dilation: tuple[int, int],
               window: str, shift: tuple[int, int], scale: float,
               backend: Optional[str]) -> list[Optional[Tensor]]:
    """The gradients through the unfused primitives (deterministic; the map exists while
    they run)."""
    leaves = [t.detach().requires_grad_(need) if t is not None else None
              for t, need in zip(inputs, needs)]
    wanted = [t for t in leaves if t is not None and t.requires_grad]
    with torch.enable_grad():
        out = unfused(*leaves, heads, kernel, dilation, window, shift, scale, backend)
        found = iter(torch.autograd.grad(out, wanted, dout))
    return [next(found) if t is not None and t.requires_grad else None for t in leaves]
