"""How a direction is run: the zero-argument callable that the timer calls.

* ``fwd`` - inference forward: ``f(*inputs)`` under ``torch.no_grad()``.
* ``bwd`` - backward only, all gradients: the forward runs once, untimed,
  and each call is ``torch.autograd.grad(out, inputs, g, retain_graph=True)``.
* ``fwdbwd`` - a training step of the op: forward with autograd, then all
  gradients.
"""

from __future__ import annotations

from typing import Callable

import torch

from .workload import Fn, Inputs

DIRECTIONS = ("fwd", "bwd", "fwdbwd")


def direction_call(fn: Fn, inputs: Inputs, direction: str) -> Callable[[], object]:
    """A callable running ``direction`` of ``fn`` on ``inputs``."""
    if direction == "fwd":
        detached = tuple(t.detach() for t in inputs.tensors)

        def fwd() -> object:
            with torch.no_grad():
                return fn(*detached)

        return fwd
    leaves = [t.detach().requires_grad_() for t in inputs.tensors]
    g = inputs.grad_out
    if direction == "bwd":
        out = fn(*leaves)

        def bwd() -> object:
            return torch.autograd.grad(out, leaves, g, retain_graph=True)

        return bwd
    if direction == "fwdbwd":

        def fwdbwd() -> object:
            return torch.autograd.grad(fn(*leaves), leaves, g)

        return fwdbwd
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
