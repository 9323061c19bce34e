"""The fused local-attention path: when it runs, its custom ops and their autograd.

``out = softmax(scale * q . k + rpb) v`` over any of
:func:`~localconn.window_attention.window_attention`'s windows, computed by
Triton's fused kernel (``triton_kernels/attention.py``: tiles of queries, the
keys of their windows' halo, online softmax in float32, ``tl.dot`` on tensor
cores): the ``(B, heads, Kh, Kw, H, W)`` map is never stored, so the
forward's memory is that of q, k, v and the output.

Backward: Triton's fused backward (``triton_kernels/attention_backward.py``,
flash-attention style: the probabilities recomputed from the saved
log-sum-exp, a dq kernel over query tiles and a dk / dv kernel over key tiles,
no map in memory either). The gradient of ``rpb`` is summed with atomics
there, so in deterministic mode (``torch.use_deterministic_algorithms``) a
call whose ``rpb`` needs a gradient takes the unfused primitives instead
(:func:`fused_unavailable` says so).

On CPU tensors the same ops run the CPU backend's kernels
(:mod:`localconn.cpu_attention`, ``csrc/cpu/attention.h``: one query at a time,
vectorised along the head dim, the softmax over the window in registers; a
deterministic backward that recomputes the probabilities), for float32, float16
and bfloat16, any head dim, wherever the CPU extension is built; ``backend="triton"``
runs Triton's kernels through its interpreter instead (tests). The ops' ``impl``
argument (:func:`fused_impl`) names the kernel.

The kernels are the custom ops ``localconn::window_attention`` (``out``, ``lse``)
and ``localconn::window_attention_backward``, with fake implementations (so
``torch.compile(fullgraph=True)`` traces them as opaque nodes), autograd,
and FLOP formulas for ``FlopCounterMode`` (:mod:`localconn.flops`).

:func:`fused_unavailable` says why the fused kernel cannot run a call (the
caller then takes the unfused path, or raises with that reason when the
fused path was demanded).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from .backends import _unavailable_reason, requested
from .reference import memory_format_of

#: the fused kernels' window codes (Triton's ``WINDOW`` constexpr, csrc/cpu/plan.h's
#: ``Attn::window``)
WINDOW_CODES = {"neighborhood": 0, "causal": 1, "sliding": 2, "block": 3}

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


@torch._dynamo.assume_constant_result
def _context_backend() -> str:
    """The backend :func:`~localconn.use_backend` or the environment asks for (under
    ``torch.compile``: the one asked for when the graph was traced, a constant of it)."""
    return requested("")


def _asked(backend: Optional[str]) -> str:
    """``backend``, else the context's (:func:`_context_backend`)."""
    return backend or _context_backend()


def fused_impl(q: Tensor, backend: Optional[str]) -> str:
    """The fused kernel a call on ``q`` runs: ``"cpu"`` (:mod:`localconn.cpu_attention`) for
    CPU tensors unless ``backend="triton"`` asks for Triton's (its interpreter), else
    ``"triton"``. ``backend`` ``None``: the one asked for by :func:`~localconn.use_backend`
    or the environment (:func:`_asked`)."""
    backend = _asked(backend)
    return "cpu" if q.device.type == "cpu" and backend != "triton" else "triton"


def _cpu_unavailable(q: Tensor, backend: Optional[str]) -> Optional[str]:
    """Why the CPU's fused kernel cannot run (``None`` if it can)."""
    from . import cpu_attention, cpu_backend

    if backend not in (None, "auto", "cpu"):
        return (f"backend={backend!r}: the fused kernels are the CPU backend's and "
                "Triton's")
    if q.dtype not in cpu_attention.DTYPES:
        return (f"the CPU's fused kernel takes float32, float16 and bfloat16, got {q.dtype} "
                "(the primitives run it)")
    return cpu_backend.available()


def fused_unavailable(q: Tensor, v: Tensor, heads: int, backend: Optional[str],
                      rpb: Optional[Tensor] = None, auto: bool = True) -> Optional[str]:
    """``None`` if the fused kernel can compute attention on the ``(B, heads * D, H, W)``
    images ``q`` and ``v`` (``auto``: and is the one to pick), else why not."""
    from .decompositions import inlined_now

    if not torch.compiler.is_compiling() and inlined_now():
        return "exporting through the TorchScript exporter: the primitives, as standard ops"
    backend = _asked(backend)
    if fused_impl(q, backend) == "cpu":
        return _cpu_unavailable(q, backend)
    if backend not in (None, "auto", "triton"):
        return f"backend={backend!r}: the fused kernel is Triton's"
    if q.dtype not in _FUSED_DTYPES:
        return f"the fused kernel takes float16, bfloat16 and float32, got {q.dtype}"
    if auto and q.dtype == torch.float32:
        return ("float32: the fused kernels' exact IEEE products run on FMA units through shared "
                "memory, which the cost model predicts slower than the primitives in the backward "
                "(DWNet-T stage 1: 3.3 against 1.9 ms); fused=True runs them")
    D, Dv = q.shape[1] // heads, v.shape[1] // heads
    if max(D, Dv) > MAX_HEAD_DIM:
        return f"head dims up to {MAX_HEAD_DIM}, got {D} (query) and {Dv} (value)"
    if rpb is not None and rpb.requires_grad and torch.are_deterministic_algorithms_enabled():
        return ("deterministic algorithms are on and rpb needs a gradient, which the fused "
                "backward sums with atomics")
    if q.device.type == "cpu":
        if backend != "triton" or os.environ.get("TRITON_INTERPRET") != "1":
            return ("CPU tensors run the fused kernel only through Triton's interpreter "
                    "(backend='triton' with TRITON_INTERPRET=1)")
    elif q.device.type != "cuda":
        return f"needs a CUDA tensor, got a {q.device.type} tensor"
    why = _unavailable_reason("triton")  # (one backend's check, not backends()'s every one)
    if why is not None:
        return f"the Triton backend is unavailable ({why})"
    if q.device.type == "cuda" and torch.version.hip is None:
        major, minor = torch.cuda.get_device_capability(q.device)
        if major < 8:
            return f"needs compute capability >= 8.0 (16-bit tl.dot), got {major}.{minor}"
    return None


def _pair(v: Sequence[int]) -> tuple[int, int]:
    return int(v[0]), int(v[1])


@torch.library.custom_op("localconn::window_attention", mutates_args=())
def window_attention_op(q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], heads: int,
                        kernel: Sequence[int], dilation: Sequence[int], window: str,
                        shift: Sequence[int], scale: float, impl: str = "triton",
                        ) -> tuple[Tensor, Tensor]:
    """Fused attention on ``(B, heads * D, H, W)`` images: ``out (B, heads * Dv, H, W)`` and the
    float32 log-sum-exp ``(B, heads, H, W)`` (see the module docstring); ``impl`` the kernel
    (:func:`fused_impl`)."""
    if impl == "cpu":
        from . import cpu_attention

        return cpu_attention.forward(q, k, v, rpb, heads, kernel, dilation, window, shift,
                                     scale)
    from .triton_kernels import backend as triton_backend

    return triton_backend.neighborhood_attention(q, k, v, rpb, heads, _pair(kernel),
                                                 _pair(dilation), window, _pair(shift), scale)


@window_attention_op.register_fake
def _(q, k, v, rpb, heads, kernel, dilation, window, shift, scale, impl="triton"):
    B, _, H, W = q.shape
    out = torch.empty(v.shape, dtype=v.dtype, device=v.device, memory_format=memory_format_of(v))
    return out, q.new_empty((B, heads, H, W), dtype=torch.float32)


@torch.library.custom_op("localconn::window_attention_backward", mutates_args=())
def window_attention_backward_op(
    q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], out: Tensor, lse: Tensor,
    dout: Tensor, heads: int, kernel: Sequence[int], dilation: Sequence[int], window: str,
    shift: Sequence[int], scale: float, rpb_grad: bool, impl: str = "triton",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """dq, dk, dv and drpb (``rpb``'s dtype; empty unless ``rpb_grad``) of
    :func:`window_attention_op`."""
    if impl == "cpu":
        from . import cpu_attention

        dq, dk, dv, drpb = cpu_attention.backward(
            q, k, v, rpb, out, lse, dout, heads, _pair(kernel), _pair(dilation), window,
            _pair(shift), scale, rpb_grad)
        return dq, dk, dv, q.new_empty(0) if drpb is None else drpb.to(rpb.dtype)
    from .triton_kernels import backend as triton_backend

    dq, dk, dv, drpb = triton_backend.neighborhood_attention_backward(
        q, k, v, rpb, out, lse, dout.contiguous(memory_format=memory_format_of(out)), heads,
        _pair(kernel), _pair(dilation), window, _pair(shift), scale, rpb_grad)
    return dq, dk, dv, q.new_empty(0) if drpb is None else drpb.to(rpb.dtype)


@window_attention_backward_op.register_fake
def _(q, k, v, rpb, out, lse, dout, heads, kernel, dilation, window, shift, scale, rpb_grad,
      impl="triton"):
    grads = [torch.empty(t.shape, dtype=t.dtype, device=t.device,
                         memory_format=memory_format_of(t)) for t in (q, k, v)]
    return (*grads, rpb.new_empty(rpb.shape) if rpb_grad else q.new_empty(0))


def _setup(ctx, inputs, output) -> None:
    q, k, v, rpb, heads, kernel, dilation, window, shift, scale, impl = inputs
    ctx.save_for_backward(q, k, v, rpb, *output)
    ctx.args = (heads, kernel, dilation, window, shift, scale)
    ctx.impl = impl


def _backward(ctx, dout: Tensor, _dlse: Optional[Tensor]) -> tuple[Optional[Tensor], ...]:
    q, k, v, rpb, out, lse = ctx.saved_tensors
    needs = ctx.needs_input_grad[:4]
    rpb_grad = rpb is not None and needs[3]
    dq, dk, dv, drpb = window_attention_backward_op(q, k, v, rpb, out, lse, dout, *ctx.args,
                                                    rpb_grad, ctx.impl)
    grads = (dq, dk, dv, drpb if rpb_grad else None)
    return (*(g if need else None for g, need in zip(grads, needs)), *(None,) * 7)


window_attention_op.register_autograd(_backward, setup_context=_setup)
