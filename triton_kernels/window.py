"""The window index arithmetic of docs/design.md section 3, written once for Triton.

Every kernel of this backend reads input positions through these helpers,
so the three windows exist in exactly one place on the device side. Along
one axis of input length ``L``, output length ``Lo``, kernel ``K``, stride
``s``, leading padding ``p`` and dilation ``d``:

* forward, :func:`input_index`: ``i(o, k) = start(o) + k * d`` with

  - sliding:      ``start(o) = o * s - p``
  - neighborhood: ``start(o) = r + d * clamp(o // d - K // 2, 0, Lr - K)``,
    ``r = o mod d``, ``Lr = ceil((L - r) / d)``
  - block:        ``start(o) = (o // K) * K``

  A tap is in the image when ``0 <= i < L`` (only the sliding window can
  leave it: the other two are shifted inside by construction).

* inverse, :func:`candidate`: the outputs ``o`` that read input ``i`` and
  their taps ``k``, enumerated by a candidate number ``j``:

  - sliding:      ``k = j``, ``o = (i + p - j * d) / s`` when divisible and
    ``0 <= o < Lo``; ``j`` in ``[0, K)``;
  - block:        ``o = (i // K) * K + j``, ``k = i mod K``; ``j`` in ``[0, K)``;
  - neighborhood: ``o = i + j * d``, ``k = (i - start(o)) / d`` when
    ``0 <= k < K``; ``j`` in the range :func:`candidate_range` returns
    (a sub-range of ``[-(K - 1), K - 1]``).

Window codes (``WINDOW`` constexpr): :data:`SLIDING`, :data:`NEIGHBORHOOD`,
:data:`BLOCK`. Only non-negative numbers are ever divided, so C-style and
floor division agree (compiled kernels and the interpreter alike).
"""

from __future__ import annotations

import triton
import triton.language as tl

SLIDING = tl.constexpr(0)
NEIGHBORHOOD = tl.constexpr(1)
BLOCK = tl.constexpr(2)

#: window name -> the ``WINDOW`` constexpr of the kernels
WINDOW_CODES: dict[str, int] = {"sliding": 0, "neighborhood": 1, "block": 2}


@triton.jit
def input_index(o, k, L, K: tl.constexpr, S, P, D, WINDOW: tl.constexpr):
    """``i(o, k) = start(o) + k * d`` for outputs ``o >= 0`` (any broadcastable shapes)."""
    if WINDOW == SLIDING:
        i = o * S - P + k * D
    elif WINDOW == NEIGHBORHOOD:
        r = o % D
        group_len = (L - r + D - 1) // D
        q = tl.minimum(tl.maximum(o // D - K // 2, 0), group_len - K)
        i = r + D * q + k * D
    else:
        i = (o // K) * K + k
    return i


@triton.jit
def candidate(i, j, L, Lo, K: tl.constexpr, S, P, D, WINDOW: tl.constexpr):
    """Candidate ``j`` of input ``i >= 0``: ``(o, k, valid)`` with ``i(o, k) = i`` where valid.

    For the sliding window ``k`` is ``j`` itself (uniform over a tile), for
    the other windows a tensor shaped like ``i``. ``o`` and ``k`` are
    meaningless where ``valid`` is false (mask every load with it).
    """
    if WINDOW == SLIDING:
        num = i + P - j * D
        num_c = tl.maximum(num, 0)
        o = num_c // S
        valid = (num >= 0) & (num_c - o * S == 0) & (o < Lo)
        k = j
    elif WINDOW == NEIGHBORHOOD:
        o = i + j * D
        o_c = tl.minimum(tl.maximum(o, 0), L - 1)
        diff = i - input_index(o_c, 0, L, K, S, P, D, WINDOW)
        diff_c = tl.maximum(diff, 0)
        k = diff_c // D
        valid = (o >= 0) & (o < L) & (diff >= 0) & (k < K) & (diff_c - k * D == 0)
    else:
        first = (i // K) * K
        o = first + j
        k = i - first
        valid = o < Lo
    return o, k, valid


@triton.jit
def candidate_range(i, mask, L, K: tl.constexpr, D, WINDOW: tl.constexpr):
    """``(j_lo, j_hi)``: candidate numbers to try for the inputs ``i`` where ``mask``.

    Sliding and block: ``[0, K - 1]``. Neighborhood: per input, with
    ``u = i // d`` in its dilation group of length ``Lr``, the outputs whose
    window holds ``i`` are ``q`` in ``[q_lo, q_hi]`` (``o = r + q * d``)::

        q_lo = 0                     if u - K + 1 <= 0  else  u - K + 1 + K // 2
        q_hi = Lr - 1                if u >= Lr - K     else  u + K // 2

    and ``j = q - u``; the tile tries the union of those ranges (about
    ``K`` candidates inside the image instead of ``2K - 1``).
    """
    if WINDOW == NEIGHBORHOOD:
        r = i % D
        u = i // D
        group_len = (L - r + D - 1) // D
        q_lo = tl.where(u - K + 1 <= 0, 0, u - K + 1 + K // 2)
        q_hi = tl.where(u >= group_len - K, group_len - 1, u + K // 2)
        j_lo = tl.min(tl.where(mask, q_lo - u, K))
        j_hi = tl.max(tl.where(mask, q_hi - u, -K))
    else:
        j_lo = 0
        j_hi = K - 1
    return j_lo, j_hi
