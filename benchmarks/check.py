"""Correctness gate: a provider's output and gradients against the reference.

Once per case (and dtype/layout), before any timing, each provider runs
forward and backward on the same random inputs; the oracle is
``localconn``'s reference backend run in float32 on those inputs (already
rounded to the case's dtype). A provider whose result differs by more than
:data:`TOLERANCE` is reported ``wrong`` and not timed.

The criterion is the max-normalised error ``max|got - ref| / max|ref|``:
it is insensitive to summation order and to TF32 (which cuDNN uses for
float32 convolutions by default), but any wrong tap, border, group or
batch index gives an error of order one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from .cases import Case
from .workload import Fn, Inputs, localconn_op

#: dtype -> largest allowed max|got - ref| / max|ref|
TOLERANCE: dict[torch.dtype, float] = {
    torch.float32: 5e-3,
    torch.float16: 1e-2,
    torch.bfloat16: 4e-2,
}


def run_once(fn: Fn, inputs: Inputs, grads: bool) -> list[torch.Tensor]:
    """``[output]`` or ``[output, *input_grads]`` of one call of ``fn``."""
    if not grads:
        with torch.no_grad():
            return [fn(*(t.detach() for t in inputs.tensors))]
    leaves = [t.detach().requires_grad_() for t in inputs.tensors]
    out = fn(*leaves)
    return [out.detach(), *torch.autograd.grad(out, leaves, inputs.grad_out)]


def oracle(case: Case, inputs: Inputs, grads: bool) -> list[torch.Tensor]:
    """The float32 reference results for ``inputs`` (output, then input gradients)."""
    up = Inputs(
        tuple(t.detach().float() for t in inputs.tensors), inputs.grad_out.detach().float()
    )
    return run_once(localconn_op(case, "reference"), up, grads)


def compare(
    case: Case, got: Sequence[torch.Tensor], ref: Sequence[torch.Tensor], dtype: torch.dtype
) -> Optional[str]:
    """None if every result is within tolerance, else ``"wrong: ..."`` naming the worst."""
    names = ["out"] + ["d" + n for n in case.input_names]
    tol = TOLERANCE[dtype]
    for name, g, r in zip(names, got, ref):
        if tuple(g.shape) != tuple(r.shape):
            return f"wrong: {name} has shape {tuple(g.shape)}, expected {tuple(r.shape)}"
        g32 = g.detach().float()
        if not torch.isfinite(g32).all() and torch.isfinite(r).all():
            return f"wrong: {name} has non-finite values"
        scale = r.abs().max().item() or 1.0
        err = (g32 - r).abs().max().item() / scale
        if not err <= tol:
            return f"wrong: {name} max|err|/max|ref| = {err:.3g} > {tol:g}"
    return None
