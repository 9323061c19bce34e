"""Bytes moved per op and direction, counted explicitly, in one place.

The count is the minimum traffic of the op as a whole: every input read
once, every output written once, nothing else (no intermediates, no
re-reads). Achieved GB/s = these bytes / measured time, so it is directly
comparable with the device-to-device copy bandwidth. For the unfused
attention this is the fused ideal (q, k, v in, y out): the unfused
pipeline's logits and probabilities are deliberately *not* counted.

Tensor names: ``img`` is an ``(N, C, H, W)`` input or its gradient,
``out`` the ``(N, C, Ho, Wo)`` result or its gradient, ``w`` the weight
(its unique elements: the 6-D logical shape, broadcast dims counted once).
"""

from __future__ import annotations

import math

import torch

from .cases import Case

#: (op, pass) -> (tensors read, tensors written)
IO: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    # y = conn(x, w)
    ("conn", "fwd"): (("img:x", "w:w"), ("out:y",)),
    # dx = conn_T(g, w), dw = corr(g, x)
    ("conn", "bwd"): (("out:g", "img:x", "w:w"), ("img:dx", "w:dw")),
    # w = corr(a, b)
    ("corr", "fwd"): (("img:a", "img:b"), ("w:w",)),
    # da = conn(b, gw), db = conn_T(a, gw)
    ("corr", "bwd"): (("w:gw", "img:a", "img:b"), ("img:da", "img:db")),
    # y = conn(v, softmax(corr(q, k)))
    ("attention", "fwd"): (("img:q", "img:k", "img:v"), ("out:y",)),
    ("attention", "bwd"): (("out:g", "img:q", "img:k", "img:v"), ("img:dq", "img:dk", "img:dv")),
}

#: direction -> passes it runs
DIRECTION_PASSES: dict[str, tuple[str, ...]] = {
    "fwd": ("fwd",),
    "bwd": ("bwd",),
    "fwdbwd": ("fwd", "bwd"),
}


def _numel(case: Case, kind: str) -> int:
    if kind == "img":
        return math.prod(case.image_shape)
    if kind == "w":
        return math.prod(case.weight_shape)
    if kind == "out":
        N, C, _, _ = case.image_shape
        return N * C * math.prod(case.out_size)
    raise ValueError(f"unknown tensor kind {kind!r}")


def tensor_elements(case: Case, op_pass: str) -> int:
    """Elements read plus written by one pass (``"fwd"`` or ``"bwd"``) of the case's op."""
    reads, writes = IO[(case.op, op_pass)]
    return sum(_numel(case, name.split(":")[0]) for name in reads + writes)


def op_bytes(case: Case, dtype: torch.dtype, direction: str) -> int:
    """Bytes a perfect kernel moves for ``direction`` (``fwd``, ``bwd``, ``fwdbwd``)."""
    size = torch.empty((), dtype=dtype).element_size()
    return size * sum(tensor_elements(case, p) for p in DIRECTION_PASSES[direction])
