"""``corr2d``: the weight gradient, ``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]``.

The sum runs over every dim the weight broadcasts: the batch when
``Nw == 1`` (``REDUCE_N``), the ``CPG`` channels of a group when ``Cw < C``
(``REDUCE_C``), the output rows when ``Hw == 1`` (``REDUCE_H``) and columns
when ``Ww == 1`` (``REDUCE_W``).

Tile: ``[BC, BT, BH, BW]`` = channels x taps x rows x columns. The taps are
flattened (``t = kh * Kw + kw``) and held as a tile dimension, so a loaded
block of ``a`` is reused by ``BT`` taps and every tap keeps its own partial
sum. A program owns one *result* tile (``n'``, a channel tile or a group, a
tap chunk, and a row/column tile along the dims that are not reduced) and
loops over its share of the *reduction* tiles (batch x channel chunks of
the group x row tiles x column tiles, flattened into ``R`` steps):

    acc[c, t, h, w] += a[n, c, oh, ow] * b[n, c, i(oh, kh(t)), i(ow, kw(t))]

then sums ``acc`` over the reduced tile axes (a fixed tree: deterministic)
and stores it.

Split reduction: the ``R`` steps are cut into ``SPLITS`` contiguous ranges
(``[s R / S, (s + 1) R / S)``), one per program along the split axis, each
writing its partial result to its own slice of a float32 workspace
``(SPLITS, Nw, Cw, Kh*Kw, Hw, Ww)``; the host then sums the workspace over
the split dim (``torch.sum``, deterministic). So a static depth-wise
gradient (a reduction over batch and all positions) runs on
``SPLITS x (result tiles)`` programs instead of a serial loop per weight
element, and no float atomics are used anywhere. With ``SPLITS == 1`` the
program stores straight into the result (split stride 0).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .window import input_index


@triton.jit
def corr_kernel(
    a, b, out,
    N, C, H, W, Ho, Wo, CPG, SPLITS,
    san, sac, sah, saw,
    sbn, sbc, sbh, sbw,
    sos, son, sog, sot, soh, sow,
    SH, PH, DH, SW, PW, DW,
    KH: tl.constexpr, KW: tl.constexpr, WINDOW: tl.constexpr,
    REDUCE_N: tl.constexpr, REDUCE_C: tl.constexpr,
    REDUCE_H: tl.constexpr, REDUCE_W: tl.constexpr,
    BIG: tl.constexpr, F64: tl.constexpr, CL: tl.constexpr,
    BC: tl.constexpr, BT: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """One result tile of ``corr2d`` over one split of its reduction (module docstring)."""
    pid = tl.program_id(0)
    if BIG:
        pid = pid.to(tl.int64)

    # result tiles (an axis that is reduced has one tile)
    if REDUCE_C:
        n_ct = C // CPG
        r_c = tl.cdiv(CPG, BC)
    else:
        n_ct = tl.cdiv(C, BC)
        r_c = 1
    if REDUCE_N:
        n_nt = 1
        r_n = N
    else:
        n_nt = N
        r_n = 1
    if REDUCE_H:
        n_ht = 1
        r_h = tl.cdiv(Ho, BH)
    else:
        n_ht = tl.cdiv(Ho, BH)
        r_h = 1
    if REDUCE_W:
        n_wt = 1
        r_w = tl.cdiv(Wo, BW)
    else:
        n_wt = tl.cdiv(Wo, BW)
        r_w = 1
    n_tt = tl.cdiv(KH * KW, BT)

    ct = pid % n_ct
    rest = pid // n_ct
    tt = rest % n_tt
    rest = rest // n_tt
    wt = rest % n_wt
    rest = rest // n_wt
    ht = rest % n_ht
    rest = rest // n_ht
    nt = rest % n_nt
    s = rest // n_nt

    lane = tl.arange(0, BC)[:, None, None, None]
    t = (tt * BT + tl.arange(0, BT))[None, :, None, None]
    t_mask = t < KH * KW
    kh = t // KW
    kw = t - kh * KW
    h_lane = tl.arange(0, BH)[None, None, :, None]
    w_lane = tl.arange(0, BW)[None, None, None, :]

    if F64:
        acc = tl.zeros([BC, BT, BH, BW], dtype=tl.float64)
    else:
        acc = tl.zeros([BC, BT, BH, BW], dtype=tl.float32)

    steps = r_n * r_c * r_h * r_w
    r_begin = s * steps // SPLITS
    r_end = (s + 1) * steps // SPLITS
    for r in range(r_begin, r_end):
        q = r
        w_r = q % r_w
        q = q // r_w
        h_r = q % r_h
        q = q // r_h
        c_r = q % r_c
        n_r = q // r_c
        if REDUCE_N:
            n = n_r
        else:
            n = nt
        if REDUCE_C:
            local = c_r * BC + lane
            c = ct * CPG + local
            c_mask = local < CPG
        else:
            c = ct * BC + lane
            c_mask = c < C
        if REDUCE_H:
            oh = h_r * BH + h_lane
        else:
            oh = ht * BH + h_lane
        if REDUCE_W:
            ow = w_r * BW + w_lane
        else:
            ow = wt * BW + w_lane
        o_mask = c_mask & (oh < Ho) & (ow < Wo)
        ih = input_index(oh, kh, H, KH, SH, PH, DH, WINDOW)
        iw = input_index(ow, kw, W, KW, SW, PW, DW, WINDOW)
        av = tl.load(a + n * san + c * sac + oh * sah + ow * saw, mask=o_mask, other=0.0)
        b_mask = o_mask & t_mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        bv = tl.load(b + n * sbn + c * sbc + ih * sbh + iw * sbw, mask=b_mask, other=0.0)
        acc += av.to(acc.dtype) * bv.to(acc.dtype)

    res = acc
    o_ptr = out + s * sos + nt * son + t * sot
    mask = t_mask
    if REDUCE_C:
        res = tl.sum(res, axis=0, keep_dims=True)
        o_ptr = o_ptr + ct * sog
    else:
        c = ct * BC + lane
        o_ptr = o_ptr + c * sog
        mask = mask & (c < C)
    if REDUCE_H:
        res = tl.sum(res, axis=2, keep_dims=True)
    else:
        oh = ht * BH + h_lane
        o_ptr = o_ptr + oh * soh
        mask = mask & (oh < Ho)
    if REDUCE_W:
        res = tl.sum(res, axis=3, keep_dims=True)
    else:
        ow = wt * BW + w_lane
        o_ptr = o_ptr + ow * sow
        mask = mask & (ow < Wo)
    tl.store(o_ptr, res.to(out.dtype.element_ty), mask=mask)
