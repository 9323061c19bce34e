"""localconn's multiply-accumulates in other libraries' counters: fvcore, thop, ptflops.

``torch.utils.flop_counter`` counts localconn's ops by itself (:mod:`localconn.flops`
registers their formulas). The other counters see a ``localconn::`` op or a localconn
module as unknown and count it as 0. They take handlers instead, and these supply them
with the same formulas: each primitive is ``Kh * Kw`` MACs per element of its image
operand (``y`` for ``conn2d``, ``g`` for the transpose and ``corr2d``), and the fused
attention is ``B * H * W * Kh * Kw * (C_q + C_v)``. Like all three libraries, these count
one multiply-accumulate as one "FLOP"::

    fvcore:   FlopCountAnalysis(model, x).set_op_handle(**fvcore_handles()).total()
    thop:     thop.profile(model, (x,), custom_ops=thop_custom_ops())
    ptflops:  get_model_complexity_info(model, (3, 224, 224), backend="pytorch",
                                        custom_modules_hooks=ptflops_hooks())

fvcore counts traced ops, so its handlers count the ``localconn::`` ops alone and leave
everything else (the generators' convolutions, attention's qkv and projection) to
fvcore. thop and ptflops treat a module with a handler as a leaf (they do not visit its
submodules). thop's handler therefore counts the whole module as
``torch.utils.flop_counter`` does (:func:`forward_macs`), and ptflops' hook adds its
submodules' own ptflops counts.

Example::

    >>> import localconn
    >>> m = localconn.LocalConn2d(8, 3)
    >>> y = m(torch.randn(2, 8, 5, 5))
    >>> module_macs(m, (torch.randn(2, 8, 5, 5),), y) == 2 * 8 * 5 * 5 * 9
    True
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from . import flops
from .attention import LocalAttention2d
from .layer import LocalConn2d


def module_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """The MACs of ``module``'s own localconn primitives for ``inputs`` -> ``output``
    (a :class:`LocalConn2d` or :class:`LocalAttention2d`; 0 for any other module), by
    :mod:`localconn.flops`' formulas."""
    if isinstance(module, LocalConn2d):
        kernel_only = (1, 1, *module.kernel_size)
        return flops.conn2d_flops(None, kernel_only, out_shape=output.shape) // 2
    if isinstance(module, LocalAttention2d):
        x = inputs[0].shape  # (q, k and v have the input's channels)
        return flops.window_attention_flops(x, x, x, None, module.num_heads,
                                            module.kernel_size) // 2
    return 0


# ------------------------------------------------------------------ fvcore


def _jit_shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def _jit_list(value: Any) -> list[int]:
    """An int list argument of a traced op: a constant, or a list built of constants."""
    v = value.toIValue()
    if v is None and value.node().kind() == "prim::ListConstruct":
        v = [i.toIValue() for i in value.node().inputs()]
    return list(v)


def fvcore_handles() -> dict[str, Callable[[list, list], int]]:
    """fvcore op handles (``FlopCountAnalysis.set_op_handle(**fvcore_handles())``) for the
    ``localconn::`` ops of a traced model."""

    def conn2d(inputs: list, outputs: list) -> int:
        return flops.conn2d_flops(_jit_shape(inputs[0]), _jit_shape(inputs[1]),
                                  out_shape=_jit_shape(outputs[0])) // 2

    def conn2d_transpose(inputs: list, outputs: list) -> int:
        return flops.conn2d_transpose_flops(_jit_shape(inputs[0]), _jit_shape(inputs[1])) // 2

    def corr2d(inputs: list, outputs: list) -> int:
        # (the result has the weight's shape)
        return flops.corr2d_flops(_jit_shape(inputs[0]), _jit_shape(inputs[1]),
                                  _jit_shape(outputs[0])) // 2

    def window_attention(inputs: list, outputs: list) -> int:
        return flops.window_attention_flops(_jit_shape(inputs[0]), _jit_shape(inputs[1]),
                                            _jit_shape(inputs[2]), None, None,
                                            _jit_list(inputs[5])) // 2

    return {"localconn::conn2d": conn2d, "localconn::conn2d_transpose": conn2d_transpose,
            "localconn::corr2d": corr2d, "localconn::window_attention": window_attention}


# -------------------------------------------------------------------- thop


def forward_macs(module: nn.Module, inputs: tuple) -> int:
    """All MACs of ``module.forward(*inputs)``, its submodules included, as
    ``torch.utils.flop_counter`` counts them (FLOPs / 2; localconn's ops by their formulas)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.forward(*inputs)  # (not module(...): the counter's own hooks stay out)
    return counter.get_total_flops() // 2


def thop_custom_ops() -> dict[type, Callable[[nn.Module, tuple, torch.Tensor], None]]:
    """thop's ``custom_ops`` for the localconn modules (``thop.profile(..., custom_ops=...)``).

    thop counts a module with a handler as a leaf (its submodules are not visited), so the
    handler counts the whole module: :func:`forward_macs`."""

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        module.total_ops += torch.DoubleTensor([forward_macs(module, inputs)])

    return {LocalConn2d: count, LocalAttention2d: count}


# ----------------------------------------------------------------- ptflops


def _ptflops_children(module: nn.Module) -> int:
    """What ptflops counted in ``module``'s submodules: a counted child's ``__flops__``,
    else its own children's (ptflops' accumulation rule)."""
    total = 0
    for child in module.children():
        flops = getattr(child, "__flops__", None)
        total += int(flops) if flops is not None else _ptflops_children(child)
    return total


def ptflops_hooks() -> dict[type, Callable[[nn.Module, tuple, torch.Tensor], None]]:
    """ptflops' ``custom_modules_hooks`` for the localconn modules (its ``pytorch``
    backend: ``get_model_complexity_info(..., custom_modules_hooks=ptflops_hooks())``).

    ptflops takes a module with a hook as a leaf (its submodules' counts are not summed),
    so the hook adds them itself: the layer's own MACs (:func:`module_macs`) plus what
    ptflops counted in its submodules during this call."""

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        module.__flops__ += module_macs(module, inputs, output) + _ptflops_children(module)

    return {LocalConn2d: count, LocalAttention2d: count}
