"""``conn2d_transpose``: ``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] * g[n, c, o]``.

A gather, not a scatter: each program owns a ``[BC, BH, BW]`` block of the
*input-sized* result (channels x rows x columns; grid as in :mod:`conn`,
flattened, channel tile fastest) and, per axis, enumerates the candidate
outputs of its input positions with :func:`window.candidate` (sliding:
``o = (i + p - k d) / s`` when divisible and in range; block: the ``K``
outputs of the same block; neighborhood: ``o = i + j d`` whose window
holds ``i``). Each result element is a sum in a fixed order, written once:
deterministic, no atomics.

Weight loads: for a sliding window the tap ``k = j`` is uniform over the
tile, so spatial-shared weights are one scalar (group-aligned tiles) or one
value per channel lane per candidate, exactly as in the forward kernel;
position-specific weights, and the neighborhood and block windows (whose
tap differs per input position), gather the weight along positions
(host flags: ``MASK_H = W_H or window != sliding``, same for ``W``,
``W_MASKED = MASK_H or MASK_W or not GROUP_ALIGNED``). A
candidate that is not valid adds exactly 0 (never ``Inf * 0``), as in the
reference, which never forms those products.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .tiles import UNROLL, image_block
from .window import SLIDING, candidate, candidate_range


@triton.jit
def _candidate_tap(acc, iw, jw, in_w, vh, cm3, g_row, w_row, w_row_mask,
                   W, Wo, KW: tl.constexpr, SW, PW, DW, sgw, swkw, sww, WINDOW: tl.constexpr,
                   W_W: tl.constexpr, MASK_H: tl.constexpr, MASK_W: tl.constexpr,
                   W_MASKED: tl.constexpr):
    """``acc += W[.., k, o] * g[.., o]`` for column candidate ``jw`` of one row candidate."""
    ow, kw, vw = candidate(iw, jw, W, Wo, KW, SW, PW, DW, WINDOW)
    v = vh & vw & in_w
    gv = tl.load(g_row + ow * sgw, mask=cm3 & v, other=0.0)
    w_tap = w_row + kw * swkw
    w_mask = w_row_mask
    if W_W:
        w_tap = w_tap + ow * sww
    if MASK_W:
        w_mask = w_mask & vw & in_w
    if W_MASKED:
        wv = tl.load(w_tap, mask=w_mask, other=0.0)
    else:  # one scalar for the whole tile
        wv = tl.load(w_tap)
    prod = wv.to(acc.dtype) * gv.to(acc.dtype)
    if MASK_H and MASK_W:
        acc += prod
    else:  # an unmasked (uniform) weight must not meet a masked g: Inf * 0
        acc += tl.where(v, prod, 0.0)
    return acc


@triton.jit
def conn_transpose_kernel(
    g_in, w, out,
    C, H, W, Ho, Wo, CPG,
    sgn, sgc, sgh, sgw,
    swn, swg, swkh, swkw, swh, sww,
    son, soc, soh, sow,
    SH, PH, DH, SW, PW, DW,
    KH: tl.constexpr, KW: tl.constexpr, WINDOW: tl.constexpr,
    GROUP_ALIGNED: tl.constexpr, W_H: tl.constexpr, W_W: tl.constexpr,
    MASK_H: tl.constexpr, MASK_W: tl.constexpr, W_MASKED: tl.constexpr,
    BIG: tl.constexpr, F64: tl.constexpr, CL: tl.constexpr,
    BC: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """One ``[BC, BH, BW]`` block of ``x̄`` (see the module docstring)."""
    pid = tl.program_id(0)
    if BIG:
        pid = pid.to(tl.int64)
    n, c, c_mask, grp, ih, iw = image_block(pid, C, CPG, H, W, BC, BH, BW, GROUP_ALIGNED)
    c3 = c[:, None, None]
    cm3 = c_mask[:, None, None]
    ih = ih[None, :, None]
    iw = iw[None, None, :]
    in_h = ih < H
    in_w = iw < W

    if GROUP_ALIGNED:
        w_ptr = w + n * swn + grp * swg
        w_cmask = tl.full([1, 1, 1], 1, tl.int1)
    else:
        w_ptr = w + n * swn + grp[:, None, None] * swg
        w_cmask = cm3

    if F64:
        acc = tl.zeros([BC, BH, BW], dtype=tl.float64)
    else:
        acc = tl.zeros([BC, BH, BW], dtype=tl.float32)

    g_ptr = g_in + n * sgn + c3 * sgc
    jh_lo, jh_hi = candidate_range(ih, in_h, H, KH, DH, WINDOW)
    jw_lo, jw_hi = candidate_range(iw, in_w, W, KW, DW, WINDOW)
    for jh in range(jh_lo, jh_hi + 1):
        oh, kh, vh = candidate(ih, jh, H, Ho, KH, SH, PH, DH, WINDOW)
        vh = vh & in_h
        g_row = g_ptr + oh * sgh
        w_row = w_ptr + kh * swkh
        w_row_mask = w_cmask
        if W_H:
            w_row = w_row + oh * swh
        if MASK_H:
            w_row_mask = w_row_mask & vh
        if WINDOW == SLIDING and KW <= UNROLL:  # k = j: unrolled, like the forward
            for jw in tl.static_range(KW):
                acc = _candidate_tap(acc, iw, jw, in_w, vh, cm3, g_row, w_row, w_row_mask,
                                     W, Wo, KW, SW, PW, DW, sgw, swkw, sww, WINDOW,
                                     W_W, MASK_H, MASK_W, W_MASKED)
        else:
            for jw in range(jw_lo, jw_hi + 1):
                acc = _candidate_tap(acc, iw, jw, in_w, vh, cm3, g_row, w_row, w_row_mask,
                                     W, Wo, KW, SW, PW, DW, sgw, swkw, sww, WINDOW,
                                     W_W, MASK_H, MASK_W, W_MASKED)

    o_ptr = out + n * son + c3 * soc + ih * soh + iw * sow
    tl.store(o_ptr, acc.to(out.dtype.element_ty), mask=cm3 & in_h & in_w)
