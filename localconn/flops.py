"""Counting parameters and multiply-accumulates of models built on localconn.

``torch.utils.flop_counter`` counts the FLOPs of convolutions and matrix
products; this module registers formulas for localconn's custom ops
(docs/design.md section 4) when it is imported, so ``FlopCounterMode`` counts any
model that uses :func:`~localconn.local_conn2d`, :class:`~localconn.LocalConn2d`
or :class:`~localconn.LocalAttention2d`, in the forward and in the backward.
Each output element of a primitive is ``Kh * Kw`` multiply-accumulates (MACs)::

    conn2d            x (N, C, H, W) -> y (N, C, Ho, Wo):   MACs = N * C * Ho * Wo * Kh * Kw
    conn2d_transpose  g (N, C, Ho, Wo) -> x̄ (N, C, H, W):   MACs = N * C * Ho * Wo * Kh * Kw
    corr2d            a (N, C, Ho, Wo), b -> Ŵ:             MACs = N * C * Ho * Wo * Kh * Kw

and the fused attention counts what the unfused path would (``q . k`` and
``p . v``; the backward's four products, not its recomputation of ``q . k``,
as PyTorch counts flash attention)::

    window_attention           q (B, heads D, H, W), v (B, heads Dv, H, W):
                               MACs = B * H * W * Kh * Kw * heads * (D + Dv)
    window_attention_backward  MACs = 2 * B * H * W * Kh * Kw * heads * (D + Dv)

Convention: like PyTorch's own formulas (``mm``, ``convolution``), the
registered formulas return FLOPs = 2 * MACs, so localconn's ops and PyTorch's
add up in one unit inside ``FlopCounterMode``; :func:`count` divides the
total by two and reports MACs, the unit papers call "FLOPs" (e.g. Swin-T's
4.5G). Bias additions, normalisations, activations, softmax and pooling are
not counted (neither does PyTorch's counter).

Example::

    >>> import localconn.flops
    >>> m = localconn.LocalConn2d(64, 7)
    >>> localconn.flops.count(m, (1, 64, 56, 56)).macs == 64 * 56 * 56 * 49
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils import flop_counter

from . import fused_attention, ops  # noqa: F401  (define torch.ops.localconn.*)


def _taps(weight_shape: Sequence[int]) -> int:
    return int(weight_shape[2]) * int(weight_shape[3])


def conn2d_flops(x_shape, weight_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """FLOPs (2 * MACs) of ``conn2d``: ``2 * numel(y) * Kh * Kw``."""
    return 2 * math.prod(out_shape) * _taps(weight_shape)


def conn2d_transpose_flops(g_shape, weight_shape, *args: Any, out_shape=None, **kwargs) -> int:
    """FLOPs (2 * MACs) of ``conn2d_transpose``: ``2 * numel(g) * Kh * Kw``."""
    return 2 * math.prod(g_shape) * _taps(weight_shape)


def corr2d_flops(a_shape, b_shape, weight_shape, *args: Any, out_shape=None, **kwargs) -> int:
    """FLOPs (2 * MACs) of ``corr2d``: ``2 * numel(a) * Kh * Kw``."""
    return 2 * math.prod(a_shape) * _taps(weight_shape)


def window_attention_flops(q_shape, k_shape, v_shape, rpb_shape, heads, kernel, *args: Any,
                           out_shape=None, **kwargs: Any) -> int:
    """FLOPs (2 * MACs) of the fused attention: ``2 * B * H * W * Kh * Kw * (C_q + C_v)``."""
    B, C, H, W = q_shape
    return 2 * B * H * W * int(kernel[0]) * int(kernel[1]) * (C + int(v_shape[1]))


def window_attention_backward_flops(q_shape, k_shape, v_shape, rpb_shape, out_shape_, lse_shape,
                                    dout_shape, heads, kernel, *args: Any, out_shape=None,
                                    **kwargs: Any) -> int:
    """FLOPs (2 * MACs) of the fused attention's backward: twice the forward's."""
    return 2 * window_attention_flops(q_shape, k_shape, v_shape, rpb_shape, heads, kernel)


#: op -> formula (taking shapes, as ``register_flop_formula`` formulas do)
FORMULAS = {
    torch.ops.localconn.window_attention: window_attention_flops,
    torch.ops.localconn.window_attention_backward: window_attention_backward_flops,
    torch.ops.localconn.conn2d: conn2d_flops,
    torch.ops.localconn.conn2d_transpose: conn2d_transpose_flops,
    torch.ops.localconn.corr2d: corr2d_flops,
}


def _register() -> None:
    """Add :data:`FORMULAS` to PyTorch's registry (once; importing again is a no-op)."""
    for op, formula in FORMULAS.items():
        if op not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(op)(formula)


_register()


class Counts(NamedTuple):
    """Parameters and multiply-accumulates of one forward pass."""

    params: int
    macs: int


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared parameter once).

    Example::

        >>> count_params(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters())


def count_macs(
    model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224), *, device: str = "meta"
) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a ``input_size`` input.

    The model runs in eval mode (no stochastic depth, BatchNorm on running
    statistics) under ``FlopCounterMode``. With ``device="meta"`` (default)
    it runs on meta tensors: parameters and buffers are replaced by meta
    tensors of the same shape through ``torch.func.functional_call`` (the
    model is not copied or changed), so counting a large model takes no
    compute and no memory. A model whose forward reads tensor values
    (``.item()``, data-dependent shapes) needs ``device=None``: it then runs on
    its own device with a random input.

    Example::

        >>> count_macs(nn.Conv2d(3, 8, 3, padding=1), (1, 3, 10, 10))
        21600
    """
    was_training = model.training
    model.eval()
    try:
        if device == "meta":
            tensors = {
                name: torch.empty_like(t, device="meta")
                for name, t in (*model.named_parameters(), *model.named_buffers())
            }
            x = torch.empty(tuple(input_size), device="meta")
            with torch.no_grad(), flop_counter.FlopCounterMode(display=False) as counter:
                torch.func.functional_call(model, tensors, (x,))
        else:
            first = next(model.parameters(), None)
            dev = first.device if first is not None else torch.device("cpu")
            x = torch.randn(tuple(input_size), device=dev)
            with torch.no_grad(), flop_counter.FlopCounterMode(display=False) as counter:
                model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def count(
    model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224), *, device: str = "meta"
) -> Counts:
    """``Counts(params, macs)``: parameters and forward multiply-accumulates of ``model``.

    MACs as papers report "FLOPs" (see the module docstring); for an image
    classifier at batch 1 and 224x224 they compare with the published
    figures. See :func:`count_macs` for ``device``.

    Example::

        >>> import localconn.models
        >>> with torch.device("meta"):
        ...     model = localconn.models.create("dwnet_tiny")
        >>> params, macs = count(model)
        >>> f"{params / 1e6:.1f}M params, {macs / 1e9:.2f}G MACs"
        '24.2M params, 3.73G MACs'
    """
    return Counts(count_params(model), count_macs(model, input_size, device=device))
