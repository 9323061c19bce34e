"""The three primitives as ``torch.library`` custom ops, with fake kernels and autograd.

``localconn::conn2d``, ``localconn::conn2d_transpose`` and
``localconn::corr2d`` take *validated, normalised* arguments (the public
functions in :mod:`localconn.functional` do that): ``stride`` and
``dilation`` as ``[h, w]``, ``padding`` as ``[top, bottom, left, right]``,
the window name and the requested backend (``""`` = the default). Each op
builds a :class:`~localconn.problem.Problem`, lets
:func:`~localconn.autoselect.choose` pick a backend (the requested one, else
the fastest measured compiled backend, else by priority) and runs its kernel.

Their derivatives are again the three ops (docs/design.md section 4), so first
and second derivatives work on every backend, and ``torch.compile`` sees
opaque ops with fake (meta) implementations: no graph breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from . import decompositions
from .autoselect import choose
from .eager import direct
from .geometry import Geometry, geometry_from_op_args
from .problem import Problem
from .reference import accumulation_dtype, memory_format_of

_Ints = Sequence[int]


def _problem(
    primitive: str, image: Tensor, weight_shape: Sequence[int], geo: Geometry, has_bias: bool
) -> Problem:
    return Problem(
        primitive,
        geo,
        image.shape[0],
        image.shape[1],
        tuple(int(s) for s in weight_shape),  # type: ignore[arg-type]
        image.dtype,
        image.device,
        memory_format_of(image) == torch.channels_last,
        has_bias,
    )


def _empty_image(like: Tensor, size: Sequence[int]) -> Tensor:
    """An uninitialised ``(N, C, *size)`` tensor in ``like``'s memory format."""
    return torch.empty(
        (*like.shape[:2], *size),
        dtype=like.dtype,
        device=like.device,
        memory_format=memory_format_of(like),
    )


def _run(problem: Problem, backend: str, kernel: str, *args: object) -> Tensor:
    impl = choose(problem, backend, kernel, args)
    if not torch.is_autocast_enabled(problem.device.type):  # (entering the context costs 3 us)
        return getattr(impl, kernel)(*args)
    with torch.autocast(problem.device.type, enabled=False):
        return getattr(impl, kernel)(*args)


# ---------------------------------------------------------------- conn2d


def _conn2d(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: _Ints,
    padding: _Ints,
    dilation: _Ints,
    window: str,
    backend: str,
) -> Tensor:
    """``y = conn(x, W) + bias`` (see :func:`localconn.local_conn2d`)."""
    geo = geometry_from_op_args(x.shape[2:], weight.shape[2:4], stride, padding, dilation, window)
    if x.numel() == 0:  # every tap reads padding (or the output is empty too): y = bias
        y = _empty_image(x, geo.out_size).zero_()
        return y if bias is None else y.add_(bias.view(1, -1, 1, 1))
    problem = _problem("conn2d", x, weight.shape, geo, bias is not None)
    return _run(problem, backend, "conn2d", x, weight, bias, geo)


conn2d = torch.library.custom_op("localconn::conn2d", mutates_args=())(_conn2d)


def _inlined() -> bool:
    """Inside :func:`~localconn.decompositions.inlined` (never while dynamo traces: the
    context variable is not a graph constant)."""
    return not torch.compiler.is_compiling() and decompositions.inlined_now()


def run_conn2d(*args: Any) -> Tensor:
    """``conn2d(*args)``, through its implementation when :func:`~localconn.eager.direct` of
    its tensors (x, weight, bias)."""
    if _inlined():
        return decompositions._conn2d_op(*args)
    return (_conn2d if direct(*args[:3]) else conn2d)(*args)


@conn2d.register_fake
def _(x, weight, bias, stride, padding, dilation, window, backend):
    geo = geometry_from_op_args(x.shape[2:], weight.shape[2:4], stride, padding, dilation, window)
    return _empty_image(x, geo.out_size)


def _conn2d_setup(ctx, inputs, output):
    x, weight, bias, *args = inputs
    ctx.save_for_backward(x, weight)
    ctx.args = args
    ctx.has_bias = bias is not None


def _conn2d_backward(ctx, g):
    x, weight = ctx.saved_tensors
    dx = dw = db = None
    if ctx.needs_input_grad[0]:
        dx = run_conn2d_transpose(g, weight, list(x.shape[2:]), *ctx.args)
    if ctx.needs_input_grad[1]:
        dw = run_corr2d(g, x, list(weight.shape), *ctx.args)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        db = g.sum(dim=(0, 2, 3), dtype=accumulation_dtype(g.dtype)).to(g.dtype)
    return dx, dw, db, None, None, None, None, None


conn2d.register_autograd(_conn2d_backward, setup_context=_conn2d_setup)


# ------------------------------------------------------ conn2d_transpose


def _conn2d_transpose(
    g: Tensor,
    weight: Tensor,
    input_size: _Ints,
    stride: _Ints,
    padding: _Ints,
    dilation: _Ints,
    window: str,
    backend: str,
) -> Tensor:
    """``x̄ = conn_T(g, W)`` (see :func:`localconn.local_conn2d_transpose`)."""
    geo = geometry_from_op_args(input_size, weight.shape[2:4], stride, padding, dilation, window)
    if g.numel() == 0:
        return _empty_image(g, input_size).zero_()
    problem = _problem("conn2d_transpose", g, weight.shape, geo, False)
    return _run(problem, backend, "conn2d_transpose", g, weight, geo)


conn2d_transpose = torch.library.custom_op("localconn::conn2d_transpose", mutates_args=())(
    _conn2d_transpose
)


def run_conn2d_transpose(*args: Any) -> Tensor:
    """``conn2d_transpose(*args)``, through its implementation when :func:`~localconn.eager.direct` of
    its tensors (g, weight)."""
    if _inlined():
        return decompositions._conn2d_transpose_op(*args)
    return (_conn2d_transpose if direct(*args[:2]) else conn2d_transpose)(*args)


@conn2d_transpose.register_fake
def _(g, weight, input_size, stride, padding, dilation, window, backend):
    return _empty_image(g, input_size)


def _conn2d_transpose_setup(ctx, inputs, output):
    g, weight, _input_size, *args = inputs
    ctx.save_for_backward(g, weight)
    ctx.args = args


def _conn2d_transpose_backward(ctx, dx_bar):
    g, weight = ctx.saved_tensors
    dg = dw = None
    if ctx.needs_input_grad[0]:
        dg = run_conn2d(dx_bar, weight, None, *ctx.args)
    if ctx.needs_input_grad[1]:
        dw = run_corr2d(g, dx_bar, list(weight.shape), *ctx.args)
    return dg, dw, None, None, None, None, None, None


conn2d_transpose.register_autograd(
    _conn2d_transpose_backward, setup_context=_conn2d_transpose_setup
)


# ---------------------------------------------------------------- corr2d


def _corr2d(
    a: Tensor,
    b: Tensor,
    weight_shape: _Ints,
    stride: _Ints,
    padding: _Ints,
    dilation: _Ints,
    window: str,
    backend: str,
) -> Tensor:
    """``Ŵ = corr(a, b)`` (see :func:`localconn.local_corr2d`)."""
    geo = geometry_from_op_args(b.shape[2:], weight_shape[2:4], stride, padding, dilation, window)
    if a.numel() == 0 or b.numel() == 0:
        return a.new_zeros(tuple(weight_shape))
    problem = _problem("corr2d", b, weight_shape, geo, False)
    return _run(problem, backend, "corr2d", a, b, tuple(weight_shape), geo)


corr2d = torch.library.custom_op("localconn::corr2d", mutates_args=())(_corr2d)


def run_corr2d(*args: Any) -> Tensor:
    """``corr2d(*args)``, through its implementation when :func:`~localconn.eager.direct` of
    its tensors (a, b)."""
    if _inlined():
        return decompositions._corr2d_op(*args)
    return (_corr2d if direct(*args[:2]) else corr2d)(*args)


@corr2d.register_fake
def _(a, b, weight_shape, stride, padding, dilation, window, backend):
    return a.new_empty(tuple(weight_shape))


def _corr2d_setup(ctx, inputs, output):
    a, b, _weight_shape, *args = inputs
    ctx.save_for_backward(a, b)
    ctx.args = args


def _corr2d_backward(ctx, dw):
    a, b = ctx.saved_tensors
    da = db = None
    if ctx.needs_input_grad[0]:
        da = run_conn2d(b, dw, None, *ctx.args)
    if ctx.needs_input_grad[1]:
        db = run_conn2d_transpose(a, dw, list(b.shape[2:]), *ctx.args)
    return da, db, None, None, None, None, None, None


corr2d.register_autograd(_corr2d_backward, setup_context=_corr2d_setup)
