"""The three primitives in standard, functional ATen ops: what ``torch.onnx.export`` (and
``ExportedProgram.run_decompositions``) replaces the ``localconn::`` custom ops with.

The kernels and the reference backend compute a tap at a time in place; an exporter needs
a functional graph of standard ops instead. Here every window becomes two index tables,
one per axis: ``rows[kh, ho]`` is the input row that tap ``kh`` of output row ``ho``
reads (:mod:`localconn.taps`' runs), or ``H`` for the zero padding (a zero row appended
to the input). Then, with ``X[n, c, kh, kw, ho, wo] = x[n, c, rows[kh, ho], cols[kw, wo]]``
(two ``index_select``: ONNX ``Gather``):

* ``conn2d``: ``y = bias + sum_{kh, kw} W * X`` (``W`` broadcast over its shared
  dimensions: samples, the ``C / G`` channels of a group, positions);
* ``corr2d``: ``dW = sum over the shared dimensions of g * X``;
* ``conn2d_transpose``: ``W * g`` scattered back through the same tables
  (``index_add``: ONNX ``ScatterElements`` with ``add``).

This costs ``Kh * Kw`` times the input's memory in the exported graph, which is how
``F.unfold`` computes the same layer; the exported graph gives the layer's results, not
its speed. 16-bit inputs are summed in float32, as the kernels do.

They are used only for export, never registered for good: ``torch._decomp``'s global
table would also reshape how FakeTensor propagates the ops' metadata under symbolic
sizes (this graph's contiguous result, not the kernels' memory format), which
``torch.compile`` relies on. Two ways in:

    >>> import localconn, torch
    >>> m = localconn.LocalConn2d(8, 3)
    >>> ep = torch.export.export(m, (torch.randn(1, 8, 9, 9),))
    >>> ep = ep.run_decompositions(localconn.decompositions.table())
    >>> any("localconn" in str(n.target) for n in ep.graph.nodes)
    False

and :func:`localconn.export_onnx` (``torch.onnx.export`` with :func:`registered` around it).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import Axis, Geometry, geometry_from_op_args
from .reference import accumulation_dtype

_Ints = Sequence[int]


def index_table(axis: Axis, device: Optional[torch.device] = None) -> Tensor:
    """``(K, out_size)`` int64: the input index each tap of each output reads along
    ``axis``, ``in_size`` for the zero padding (:mod:`localconn.taps`' rule, as integer
    arithmetic on ``arange``: functional ops, which an exporter keeps).

    * sliding: ``i = o*s - p + k*d``, the padding where it leaves ``0 .. L - 1``;
    * block: ``i = (o // K) * K + k``;
    * neighborhood: in dilation group ``r = o mod d`` (``n_r`` positions), window start
      ``clamp(o // d - K // 2, 0, n_r - K)``, ``i = r + d * (start + k)``.

    Example::

        >>> from localconn.geometry import make_geometry
        >>> index_table(make_geometry((4, 4), (3, 3), padding=1).h).tolist()
        [[4, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4]]
    """
    L, K, s, d = axis.in_size, axis.kernel, axis.stride, axis.dilation
    o = torch.arange(axis.out_size, device=device)[None, :]
    k = torch.arange(K, device=device)[:, None]
    if axis.window == "sliding":
        i = o * s - axis.pad_begin + k * d
        return torch.where((i >= 0) & (i < L), i, torch.full_like(i, L))
    if axis.window == "block":
        return (o // K) * K + k
    r, q = o % d, o // d
    n_r = (L - r + d - 1) // d  # positions of dilation group r
    start = torch.minimum(torch.clamp(q - K // 2, min=0), n_r - K)
    return r + d * (start + k)


def _taps(x: Tensor, geo: Geometry) -> Tensor:
    """``X[n, c, kh, kw, ho, wo]`` (the zero padding included)."""
    N, C = x.shape[:2]
    rows, cols = index_table(geo.h, x.device), index_table(geo.w, x.device)
    Kh, Ho = rows.shape
    Kw, Wo = cols.shape
    xp = F.pad(x, (0, 1, 0, 1))  # (row H and column W: the padding's zeros)
    t = xp.index_select(2, rows.flatten()).index_select(3, cols.flatten())
    return t.reshape(N, C, Kh, Ho, Kw, Wo).permute(0, 1, 2, 4, 3, 5)


def conn2d(x: Tensor, weight: Tensor, bias: Optional[Tensor], geo: Geometry) -> Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]``, functional."""
    N, C = x.shape[:2]
    G = weight.shape[1]
    acc = accumulation_dtype(x.dtype)
    t = _taps(x, geo).to(acc).unflatten(1, (G, C // G))  # (N, G, C/G, Kh, Kw, Ho, Wo)
    y = (t * weight.to(acc).unsqueeze(2)).sum(dim=(3, 4)).flatten(1, 2)
    if bias is not None:
        y = y + bias.to(acc).view(1, C, 1, 1)
    return y.to(x.dtype)


def corr2d(g: Tensor, x: Tensor, weight_shape: Sequence[int], geo: Geometry) -> Tensor:
    """``dW[n', G, k, o'] = sum over the shared dimensions of g[n, c, o] * x[n, c, i(o, k)]``."""
    N, C = x.shape[:2]
    Nw, G, _, _, Hw, Ww = weight_shape  # (symbolic sizes stay symbolic: no int())
    acc = accumulation_dtype(x.dtype)
    t = _taps(x, geo).to(acc).unflatten(1, (G, C // G))
    gg = g.to(acc).unflatten(1, (G, C // G))[:, :, :, None, None]
    p = (t * gg).sum(dim=2)  # (N, G, Kh, Kw, Ho, Wo)
    if Nw == 1:
        p = p.sum(dim=0, keepdim=True)
    if Hw == 1:
        p = p.sum(dim=4, keepdim=True)
    if Ww == 1:
        p = p.sum(dim=5, keepdim=True)
    return p.to(x.dtype)


def conn2d_transpose(g: Tensor, weight: Tensor, input_size: Sequence[int],
                     geo: Geometry) -> Tensor:
    """``xbar[n, c, i] = sum_{(o, k): i(o, k) = i} W[n', g(c), k, o'] g[n, c, o]``."""
    N, C = g.shape[:2]
    G, Kh, Kw = weight.shape[1], weight.shape[2], weight.shape[3]
    H, W = input_size
    Ho, Wo = g.shape[2:]
    acc = accumulation_dtype(g.dtype)
    rows, cols = index_table(geo.h, g.device), index_table(geo.w, g.device)
    gg = g.to(acc).unflatten(1, (G, C // G))[:, :, :, None, None]
    p = (gg * weight.to(acc).unsqueeze(2)).flatten(1, 2)  # (N, C, Kh, Kw, Ho, Wo)
    p = p.permute(0, 1, 2, 4, 3, 5).reshape(N, C, Kh * Ho, Kw * Wo)
    by_col = p.new_zeros((N, C, Kh * Ho, W + 1)).index_add(3, cols.flatten(), p)
    by_row = by_col.new_zeros((N, C, H + 1, W + 1)).index_add(2, rows.flatten(), by_col)
    return by_row[:, :, :H, :W].to(g.dtype)


# ------------------------------------------------------ the custom ops' decompositions


def _conn2d_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: _Ints,
               padding: _Ints, dilation: _Ints, window: str, backend: str) -> Tensor:
    geo = geometry_from_op_args(x.shape[2:], weight.shape[2:4], stride, padding, dilation, window)
    return conn2d(x, weight, bias, geo)


def _conn2d_transpose_op(g: Tensor, weight: Tensor, input_size: _Ints, stride: _Ints,
                         padding: _Ints, dilation: _Ints, window: str, backend: str) -> Tensor:
    geo = geometry_from_op_args(input_size, weight.shape[2:4], stride, padding, dilation, window)
    return conn2d_transpose(g, weight, input_size, geo)


def _corr2d_op(g: Tensor, x: Tensor, weight_shape: _Ints, stride: _Ints, padding: _Ints,
               dilation: _Ints, window: str, backend: str) -> Tensor:
    geo = geometry_from_op_args(x.shape[2:], weight_shape[2:4], stride, padding, dilation, window)
    return corr2d(g, x, weight_shape, geo)


def _window_attention_op(q: Tensor, k: Tensor, v: Tensor, rpb: Optional[Tensor], heads: int,
                         kernel: _Ints, dilation: _Ints, window: str, shift: _Ints,
                         scale: float, impl: str = "triton") -> tuple[Tensor, Tensor]:
    """The fused attention's ``(out, lse)`` as the unfused path computes it: the
    primitives (decomposed in turn), the masked softmax in float32, its log-sum-exp."""
    from .window_attention import window_aggregate, window_logits

    kernel, dilation, shift = tuple(kernel), tuple(dilation), tuple(shift)
    logits, excluded = window_logits(q * scale, k, heads, kernel, dilation, window, shift, rpb)
    if excluded is not None:
        logits = logits.masked_fill(excluded, float("-inf"))
    flat = logits.float().flatten(2, 3)
    lse = flat.logsumexp(dim=2)
    attn = (flat - lse.unsqueeze(2)).exp().unflatten(2, logits.shape[2:4]).to(v.dtype)
    return window_aggregate(attn, v, kernel, dilation, window), lse


def table() -> dict[torch._ops.OpOverload, Callable[..., Tensor]]:
    """``torch.export.default_decompositions()`` with the ``localconn::`` ops added:
    ``ep.run_decompositions(table())`` leaves no custom op in an exported program."""
    t = torch.export.default_decompositions()
    t.update(_custom_ops())
    return t


def _custom_ops() -> dict[torch._ops.OpOverload, Callable[..., Tensor]]:
    from . import fused_attention  # noqa: F401  (defines localconn::window_attention)

    ops = torch.ops.localconn
    return {ops.conn2d.default: _conn2d_op, ops.conn2d_transpose.default: _conn2d_transpose_op,
            ops.corr2d.default: _corr2d_op,
            ops.window_attention.default: _window_attention_op}


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """The decompositions in ``torch._decomp``'s global table (where ``torch.onnx.export``'s
    dynamo exporter looks) for the duration of the block, then removed again.

    Example::

        >>> with registered():
        ...     torch.ops.localconn.conn2d.default in torch._decomp.decomposition_table
        True
    """
    from torch._decomp import decomposition_table

    added = {op: fn for op, fn in _custom_ops().items() if op not in decomposition_table}
    decomposition_table.update(added)
    try:
        yield
    finally:
        for op in added:
            decomposition_table.pop(op, None)


_INLINED: contextvars.ContextVar[bool] = contextvars.ContextVar("localconn_inlined",
                                                                default=False)


def inlined_now() -> bool:
    """Whether the primitives run as their decompositions here (:func:`inlined`)."""
    return _INLINED.get()


@contextlib.contextmanager
def inlined() -> Iterator[None]:
    """Inside the block the three primitives *run* as their decompositions (standard ATen
    ops, no custom op) and attention takes the primitives: what ``torch.jit.trace`` (and
    so the TorchScript ONNX exporter) records is then a graph of standard ops. Slow: for
    export only.

    Example::

        >>> import localconn
        >>> x, w = torch.randn(1, 2, 5, 5), torch.randn(1, 2, 3, 3, 1, 1)
        >>> with inlined():
        ...     y = torch.jit.trace(lambda x: localconn.local_conn2d(x, w, padding=1), (x,))
        >>> any("localconn" in str(n.kind()) for n in y.graph.nodes())
        False
    """
    token = _INLINED.set(True)
    try:
        yield
    finally:
        _INLINED.reset(token)


def export_onnx(model: torch.nn.Module, args: tuple, f: Optional[Any] = None,
                **kwargs: Any) -> Any:
    """``torch.onnx.export(model, args, f, dynamo=True, **kwargs)`` with the ``localconn::``
    ops replaced by standard ATen ops (:func:`registered`): an ONNX model of standard
    operators, which onnxruntime (or any ONNX runtime) runs. Returns the exporter's
    ``ONNXProgram``; ``dynamic_shapes`` and the other ``torch.onnx.export`` arguments pass
    through.

    ``dynamo=False`` runs the TorchScript exporter instead, on a trace of the model with
    the primitives running as their decompositions (:func:`inlined`): the index tables
    are constants of the graph, so only the batch may be a ``dynamic_axes`` dimension.

    Example::

        >>> import localconn, torch
        >>> program = localconn.export_onnx(localconn.LocalConn2d(8, 3).eval(),
        ...                                 (torch.randn(1, 8, 9, 9),))    # doctest: +SKIP
        >>> program.save("layer.onnx")                                     # doctest: +SKIP
    """
    kwargs.setdefault("dynamo", True)
    if not kwargs["dynamo"]:
        with inlined():
            return torch.onnx.export(model, args, f, **kwargs)
    with registered():
        return torch.onnx.export(model, args, f, **kwargs)
