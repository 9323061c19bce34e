"""What the model evaluates: a benchmark case's primitive calls, their bytes and work.

Cases are :mod:`benchmarks.cases` (suites ``paper``, ``large-kernel``,
``attention``); the primitive of each direction is ``Case.primitives``
(shared with ``benchmarks/kernel_times.py``, which measures the same calls
on a GPU). The whole-attention case is the unfused composite that
``LocalAttention2d`` runs today:

* ``fwd``: ``q * scale`` (PyTorch), ``corr2d(q, k)`` (logits), softmax over
  the taps (PyTorch), ``conn2d(v, P)``;
* ``bwd``: ``conn2d_transpose(g, P)`` (dv), ``corr2d(g, v)`` (dP), the softmax
  backward (PyTorch), ``conn2d(k, dS)`` (dq), ``conn2d_transpose(q, dS)`` (dk),
  ``dq * scale`` (PyTorch).

The roofline of a call: each operand read once and the result written once
(DRAM bytes), and ``N*C*Ho*Wo*Kh*Kw`` multiply-adds per primitive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from benchmarks.cases import Case
from benchmarks.workload import DTYPES, LAYOUTS
from localconn.geometry import Geometry, make_geometry

from .predict import Roofline


@dataclass
class PrimitiveCall:
    """One primitive with its operand shapes (tensors made on demand)."""

    primitive: str  # conn2d, conn2d_transpose, corr2d
    a: str  # operand roles (Case.primitives)
    b: str


@dataclass
class TorchStep:
    """A PyTorch kernel of a composite: name and bytes it moves."""

    name: str
    bytes: float


@dataclass
class Work:
    """One (case, dtype, layout, direction): its steps in order and its roofline."""

    case: Case
    dtype: str
    layout: str
    direction: str
    steps: list = field(default_factory=list)  # PrimitiveCall | TorchStep
    roofline: Roofline = Roofline(0.0, 0.0)
    intermediates: float = 0.0  # bytes of buffers written and read back between kernels

    @property
    def positions(self) -> int:
        """``N*C*Ho*Wo``: output positions, the unit of the per-output counts."""
        N, C = self.case.shape[:2]
        Ho, Wo = self.case.out_size
        return N * C * Ho * Wo


def geometry(case: Case) -> Geometry:
    """The case's window on its input size."""
    k = (case.kernel, case.kernel)
    if case.window == "sliding":
        return make_geometry(case.shape[2:], k, padding=case.padding)
    return make_geometry(case.shape[2:], k, window=case.window)


def elem(dtype: str) -> int:
    return torch.empty((), dtype=DTYPES[dtype]).element_size()


def operand_shape(case: Case, role: str) -> tuple[int, ...]:
    N, C = case.shape[:2]
    if role == "image":
        return case.shape
    if role == "out":
        return (N, C, *case.out_size)
    return case.weight_shape


def operand(case: Case, role: str, dtype: str, layout: str, device: str) -> torch.Tensor:
    """An operand of ``role``, filled with ones on a real device (the emulator's).

    Kernels branch on their data: the flipped strips take their fast path only for a
    finite filter, conn_mma its tensor-core path only for finite tiles. Left
    uninitialised (``torch.empty``), the garbage bits decided the traced path, and the
    predicted time, from run to run.
    """
    dt = DTYPES[dtype]
    if role == "weight":
        Nw, G, Kh, Kw, Hw, Ww = case.weight_shape
        if case.weight_layout == "attention":
            t = torch.empty((Nw, G, Hw, Ww, Kh, Kw), dtype=dt, device=device).permute(
                0, 1, 4, 5, 2, 3)
        else:
            t = torch.empty(case.weight_shape, dtype=dt, device=device)
    else:
        t = torch.empty(operand_shape(case, role), dtype=dt, device=device).contiguous(
            memory_format=LAYOUTS[layout])
    return t if device == "meta" else t.fill_(1)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def result_role(primitive: str) -> str:
    return {"conn2d": "out", "conn2d_transpose": "image", "corr2d": "weight"}[primitive]


def _macs(case: Case) -> float:
    N, C = case.shape[:2]
    Ho, Wo = case.out_size
    return float(N * C * Ho * Wo * case.taps)


def works(case: Case, dtype: str, layout: str) -> list[Work]:
    """Every direction of ``case`` as steps, with its roofline."""
    e = elem(dtype)
    out = []
    if case.op != "attention":
        for direction, (prim, a, b) in case.primitives.items():
            nbytes = e * sum(numel(operand_shape(case, r)) for r in (a, b, result_role(prim)))
            out.append(Work(case, dtype, layout, direction, [PrimitiveCall(prim, a, b)],
                            Roofline(nbytes, _macs(case))))
        return out
    image = e * numel(case.shape)
    probs = e * numel(case.weight_shape)
    fwd = [TorchStep("q * scale", 2 * image), PrimitiveCall("corr2d", "out", "image"),
           TorchStep("softmax over taps", 2 * probs), PrimitiveCall("conn2d", "image", "weight")]
    bwd = [PrimitiveCall("conn2d_transpose", "out", "weight"),
           PrimitiveCall("corr2d", "out", "image"),
           TorchStep("softmax backward", 3 * probs),
           PrimitiveCall("conn2d", "image", "weight"),
           PrimitiveCall("conn2d_transpose", "out", "weight"),
           TorchStep("dq * scale", 2 * image)]
    # fused ideal: q, k, v read, y written (forward); q, k, v, y, g read, dq, dk, dv written
    out.append(Work(case, dtype, layout, "fwd", fwd, Roofline(4 * image, 2 * _macs(case)),
                    intermediates=2 * probs))
    out.append(Work(case, dtype, layout, "bwd", bwd, Roofline(8 * image, 4 * _macs(case)),
                    intermediates=3 * probs))
    return out
