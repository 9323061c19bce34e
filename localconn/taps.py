"""Where one tap of a window reads, along one axis, as strided runs (the reference's views).

For a tap ``k`` the input index ``i(o, k)`` of every window is piecewise
affine in the output index ``o`` (docs/design.md section 3):

* ``sliding``: ``i = o*s - p + k*d``, one run over the outputs whose tap
  lands inside the image (the others read the zero padding);
* ``neighborhood``: per dilation group ``r = o mod d`` the window is clamped
  inside the image: ``rep`` border outputs all read one input (the window is
  pinned), the interior ones read ``i = o - d*(K//2) + k*d``;
* ``block``: the ``K`` outputs of a block all read input ``(o//K)*K + k``.

A :class:`Run` says: outputs ``o0 + os*(j*rep + t)`` (``j < n``, ``t < rep``)
read inputs ``i0 + is*j``. Along an axis the outputs of a run are a strided
slice viewed as ``(n, rep)`` and its inputs a strided slice viewed as
``(n, 1)``: a tap is a handful of views (no index tensor, no copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .geometry import Axis


@dataclass(frozen=True)
class Run:
    """Outputs ``o0 + o_step*(j*rep + t)`` read input ``i0 + i_step*j`` (``j < n, t < rep``)."""

    o0: int
    o_step: int
    n: int
    rep: int
    i0: int
    i_step: int

    @property
    def outputs(self) -> slice:
        return slice(self.o0, self.o0 + self.o_step * (self.n * self.rep - 1) + 1, self.o_step)

    @property
    def inputs(self) -> slice:
        return slice(self.i0, self.i0 + self.i_step * (self.n - 1) + 1, max(self.i_step, 1))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@lru_cache(maxsize=4096)
def runs(axis: Axis, k: int) -> tuple[Run, ...]:
    """The runs of tap ``k`` along ``axis`` (taps on the padding are left out)."""
    return tuple(_runs(axis, k))


def _runs(axis: Axis, k: int) -> list[Run]:
    L, Lo, K, s, d = axis.in_size, axis.out_size, axis.kernel, axis.stride, axis.dilation
    if axis.window == "sliding":
        shift = k * d - axis.pad_begin  # i = o*s + shift
        lo = max(0, _ceil_div(-shift, s))
        hi = min(Lo - 1, (L - 1 - shift) // s)
        return [Run(lo, 1, hi - lo + 1, 1, lo * s + shift, s)] if hi >= lo else []
    if axis.window == "block":
        return [Run(0, 1, L // K, K, k, K)]
    out = []
    for r in range(min(d, L)):
        q_len = _ceil_div(L - r, d)  # outputs (and inputs) of dilation group r
        head = min(K // 2, q_len)  # pinned at the start: window 0..K-1 of the group
        last = q_len - K + K // 2  # the last q whose window is not pinned at the end
        body = max(0, last - head + 1)
        tail = q_len - head - body
        if head:
            out.append(Run(r, d, 1, head, r + d * k, 0))
        if body:
            out.append(Run(r + d * head, d, body, 1, r + d * (head - K // 2 + k), d))
        if tail:
            out.append(Run(r + d * (head + body), d, 1, tail, r + d * (q_len - K + k), 0))
    return out


def padding_ranges(axis: Axis, k: int) -> list[slice]:
    """The outputs (contiguous ranges) whose tap ``k`` reads the zero padding (sliding only)."""
    if axis.window != "sliding":
        return []
    valid = runs(axis, k)
    if not valid:
        return [slice(0, axis.out_size)]
    lo, hi = valid[0].o0, valid[0].o0 + valid[0].n
    return [r for r in (slice(0, lo), slice(hi, axis.out_size)) if r.stop > r.start]


def view_outputs(t: torch.Tensor, rh: Run, rw: Run) -> torch.Tensor:
    """``t[..., outputs of rh, outputs of rw]`` as ``(..., nh, rep_h, nw, rep_w)`` (a view)."""
    v = t[..., rh.outputs, rw.outputs]
    return v.unflatten(-1, (rw.n, rw.rep)).unflatten(-3, (rh.n, rh.rep))


def view_inputs(t: torch.Tensor, rh: Run, rw: Run) -> torch.Tensor:
    """``t[..., inputs of rh, inputs of rw]`` as ``(..., nh, 1, nw, 1)`` (a view)."""
    return t[..., rh.inputs, rw.inputs].unsqueeze(-1).unsqueeze(-3)
