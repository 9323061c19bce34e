"""When a call may skip the custom op's machinery and run its implementation directly.

A ``torch.library.custom_op`` call passes through the dispatcher, a Python
autograd kernel, a redispatch and ``torch._dynamo``'s disable wrapper before
our implementation runs: about 50 us of Python a call on the CI-class CPU
(measured: 71 us through ``localconn::conn2d`` against 17 us for the same
implementation called directly, on a 1x16x8x8 input; oneDNN's whole
``F.conv2d`` call takes 34 us). For small layers, and on the GPU where a
kernel is a few microseconds, that is most of the time.

The op is what autograd, ``torch.compile``, export, tracing, ``vmap``, fake
tensors, tensor subclasses, dispatch modes (``FlopCounterMode``) and the
profiler see, so it is skipped only when none of them could: eager mode,
plain tensors on a real device, no gradient to record. The implementation is
then the same Python function the op runs, so the result is identical.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.overrides import has_torch_function

_PLAIN = (Tensor, torch.nn.Parameter)
_DEVICES = ("cpu", "cuda")


def direct(*tensors: Optional[Tensor]) -> bool:
    """Whether calling the op's implementation on ``tensors`` is the same as calling the op.

    True only in eager mode, for plain CPU/CUDA tensors, when no gradient would be
    recorded, and with no mode, transform, tracer or profiler that would see the op.

    Example::

        >>> x = torch.randn(2, 3)
        >>> direct(x), direct(x.requires_grad_())
        (True, False)
    """
    if torch.compiler.is_compiling():  # (first: dynamo folds it and traces nothing else)
        return False
    ts = [t for t in tensors if t is not None]
    if any(type(t) not in _PLAIN or t.device.type not in _DEVICES for t in ts):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in ts):
        return False
    return not (
        has_torch_function(ts)
        or torch._C._len_torch_dispatch_stack() > 0
        or torch._C._is_torch_function_mode_enabled()
        or torch._C._are_functorch_transforms_active()
        or torch._C._get_tracing_state() is not None
        or torch._C._autograd._profiler_enabled()
    )
