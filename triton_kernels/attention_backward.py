"""Fused neighborhood attention, backward: dq, dk, dv (and d rpb) by recomputation.

With the forward's log-sum-exp ``lse`` and ``delta[o] = dout[o] . out[o]``, for
every (query ``o``, key ``j``) pair of a window (attention.py's masks)::

    p = exp(scale q[o] . k[j] + rpb - lse[o]),   dp = dout[o] . v[j],   ds = p (dp - delta[o])
    dq[o] = scale sum_j ds k[j]     dk[j] = scale sum_o ds q[o]     dv[j] = sum_o p dout[o]
    drpb[h, jy - oy + Kh - 1, jx - ox + Kw - 1] += ds

Two kernels, each writing its outputs once (no atomics for dq, dk, dv):

* ``na_bwd_dq_kernel``: a program per query tile, as the forward (the keys of
  its windows' halo in blocks); it also adds ``ds`` into a float32 ``drpb``
  with atomics (the order of those adds is not fixed: deterministic mode takes
  the unfused backward instead when ``rpb`` needs a gradient);
* ``na_bwd_dkdv_kernel``: a program per key tile of one head and dilation
  group; the queries whose windows hold its keys form a range along each axis
  (``attention._query_range``, the inverse of the window starts: 14 rows for a
  tile of 8 and a 7x7 window), so it walks that query halo in blocks, recomputes ``p`` and ``ds`` transposed (keys as rows)
  and accumulates ``dk``, ``dv`` in float32.

Both recompute the pair masks of the forward exactly (``attention._inside``),
so a pair outside every window contributes nothing, and use ``tl.dot`` with
float32 accumulation (exact IEEE arithmetic for float32 inputs).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .attention import (
    _LOG2E,
    _bias_offsets,
    _dot,
    _inside,
    _key_range,
    _load_rows,
    _program_tile,
    _query_range,
    _store_rows,
)


@triton.jit
def _row_stats(lse, delta, bh, H, W, gy, gx, DIL_H, DIL_W, i, j, ok):
    """The forward's ``lse`` (base 2) and ``delta`` of queries ``(i, j)`` ((B, heads, H, W))."""
    row = (bh.to(tl.int64) * H + gy + DIL_H * i) * W + gx + DIL_W * j
    return (tl.load(lse + row, mask=ok, other=0.0) * _LOG2E,
            tl.load(delta + row, mask=ok, other=0.0))


@triton.jit
def na_bwd_dq_kernel(
    q, k, v, rpb, dout, lse, delta, dq, drpb,
    H, W, HEADS, DIL_H, DIL_W, SHIFT_H, SHIFT_W, TILES_W,
    sqb, sqc, sqh, sqw,
    skb, skc, skh, skw,
    svb, svc, svh, svw,
    sgb, sgc, sgh, sgw,
    sdb, sdc, sdh, sdw,
    srh, sry, srx,
    sgrh, sgry, sgrx,
    qk_scale, scale,
    D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, WINDOW: tl.constexpr, HAS_RPB: tl.constexpr,
    RPB_GRAD: tl.constexpr, IEEE: tl.constexpr, DOT_F32: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr, KBH: tl.constexpr, KBW: tl.constexpr,
):
    """``dq`` (and ``drpb``) of one ``BH x BW`` query tile (see the module docstring)."""
    b, head, bh, gy, gx, LY, LX, i0, j0 = _program_tile(H, W, HEADS, DIL_H, DIL_W, TILES_W,
                                                        BH, BW)
    if (i0 < LY) & (j0 < LX):
        m = tl.arange(0, BH * BW)
        qi, qj = i0 + m // BW, j0 + m % BW
        q_ok = (qi < LY) & (qj < LX)
        qt = _load_rows(q, b, sqb, qi, qj, q_ok, sqh, sqw, gy, gx, DIL_H, DIL_W, head * D, sqc,
                        D, BD, DOT_F32)
        gt = _load_rows(dout, b, sgb, qi, qj, q_ok, sgh, sgw, gy, gx, DIL_H, DIL_W, head * DV,
                        sgc, DV, BDV, DOT_F32)
        lse2, dlt = _row_stats(lse, delta, bh, H, W, gy, gx, DIL_H, DIL_W, qi, qj, q_ok)
        r_lo, r_hi = _key_range(i0, tl.minimum(i0 + BH, LY) - 1, LY, KH, WINDOW)
        c_lo, c_hi = _key_range(j0, tl.minimum(j0 + BW, LX) - 1, LX, KW, WINDOW)

        acc = tl.zeros([BH * BW, BD], tl.float32)
        n = tl.arange(0, KBH * KBW)
        for r0 in range(r_lo, r_hi, KBH):
            for c0 in range(c_lo, c_hi, KBW):
                ki, kj = r0 + n // KBW, c0 + n % KBW
                k_ok = (ki < r_hi) & (kj < c_hi)
                kt = _load_rows(k, b, skb, ki, kj, k_ok, skh, skw, gy, gx, DIL_H, DIL_W,
                                head * D, skc, D, BD, DOT_F32)
                vt = _load_rows(v, b, svb, ki, kj, k_ok, svh, svw, gy, gx, DIL_H, DIL_W,
                                head * DV, svc, DV, BDV, DOT_F32)
                # (queries past the group would add to drpb: masked)
                inside = q_ok[:, None] & _inside(qi, qj, ki, kj, LY, LX, SHIFT_H, SHIFT_W,
                                                 KH, KW, WINDOW)
                s = _dot(qt, tl.trans(kt), IEEE) * qk_scale
                if HAS_RPB:
                    roff = _bias_offsets(head, qi, qj, ki, kj, srh, sry, srx, KH, KW)
                    s += tl.load(rpb + roff, mask=inside, other=0.0).to(tl.float32) * _LOG2E
                p = tl.where(inside, tl.exp2(s - lse2[:, None]), 0.0)
                ds = p * (_dot(gt, tl.trans(vt), IEEE) - dlt[:, None])
                acc += _dot(ds.to(kt.dtype), kt, IEEE)
                if RPB_GRAD:  # (drpb's own strides: rpb may be any view)
                    goff = _bias_offsets(head, qi, qj, ki, kj, sgrh, sgry, sgrx, KH, KW)
                    tl.atomic_add(drpb + goff, ds, mask=inside)
        _store_rows(dq, acc * scale, b, sdb, qi, qj, q_ok, sdh, sdw, gy, gx, DIL_H, DIL_W,
                    head * D, sdc, D, BD)


@triton.jit
def na_bwd_dkdv_kernel(
    q, k, v, rpb, dout, lse, delta, dk, dv_out,
    H, W, HEADS, DIL_H, DIL_W, SHIFT_H, SHIFT_W, TILES_W,
    sqb, sqc, sqh, sqw,
    skb, skc, skh, skw,
    svb, svc, svh, svw,
    sgb, sgc, sgh, sgw,
    skgb, skgc, skgh, skgw,
    svgb, svgc, svgh, svgw,
    srh, sry, srx,
    qk_scale, scale,
    D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, WINDOW: tl.constexpr, HAS_RPB: tl.constexpr,
    IEEE: tl.constexpr, DOT_F32: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr, QBH: tl.constexpr, QBW: tl.constexpr,
):
    """``dk``, ``dv`` of one ``BH x BW`` key tile (see the module docstring)."""
    b, head, bh, gy, gx, LY, LX, i0, j0 = _program_tile(H, W, HEADS, DIL_H, DIL_W, TILES_W,
                                                        BH, BW)
    if (i0 < LY) & (j0 < LX):
        m = tl.arange(0, BH * BW)
        ki, kj = i0 + m // BW, j0 + m % BW
        k_ok = (ki < LY) & (kj < LX)
        kt = _load_rows(k, b, skb, ki, kj, k_ok, skh, skw, gy, gx, DIL_H, DIL_W, head * D, skc,
                        D, BD, DOT_F32)
        vt = _load_rows(v, b, svb, ki, kj, k_ok, svh, svw, gy, gx, DIL_H, DIL_W, head * DV,
                        svc, DV, BDV, DOT_F32)
        # the queries whose windows hold some of these keys
        r_lo, r_hi = _query_range(i0, tl.minimum(i0 + BH, LY) - 1, LY, KH, WINDOW)
        c_lo, c_hi = _query_range(j0, tl.minimum(j0 + BW, LX) - 1, LX, KW, WINDOW)

        acc_k = tl.zeros([BH * BW, BD], tl.float32)
        acc_v = tl.zeros([BH * BW, BDV], tl.float32)
        n = tl.arange(0, QBH * QBW)
        for r0 in range(r_lo, r_hi, QBH):
            for c0 in range(c_lo, c_hi, QBW):
                qi, qj = r0 + n // QBW, c0 + n % QBW
                q_ok = (qi < r_hi) & (qj < c_hi)
                qt = _load_rows(q, b, sqb, qi, qj, q_ok, sqh, sqw, gy, gx, DIL_H, DIL_W,
                                head * D, sqc, D, BD, DOT_F32)
                gt = _load_rows(dout, b, sgb, qi, qj, q_ok, sgh, sgw, gy, gx, DIL_H, DIL_W,
                                head * DV, sgc, DV, BDV, DOT_F32)
                lse2, dlt = _row_stats(lse, delta, bh, H, W, gy, gx, DIL_H, DIL_W, qi, qj, q_ok)
                # [keys, queries]: the transpose of the dq kernel's pairs
                # (queries past the group would add to dk, dv: masked)
                inside = tl.trans(q_ok[:, None] & _inside(qi, qj, ki, kj, LY, LX, SHIFT_H,
                                                          SHIFT_W, KH, KW, WINDOW))
                s = _dot(kt, tl.trans(qt), IEEE) * qk_scale
                if HAS_RPB:
                    roff = tl.trans(_bias_offsets(head, qi, qj, ki, kj, srh, sry, srx, KH, KW))
                    s += tl.load(rpb + roff, mask=inside, other=0.0).to(tl.float32) * _LOG2E
                p = tl.where(inside, tl.exp2(s - lse2[None, :]), 0.0)
                acc_v += _dot(p.to(gt.dtype), gt, IEEE)
                ds = p * (_dot(vt, tl.trans(gt), IEEE) - dlt[None, :])
                acc_k += _dot(ds.to(qt.dtype), qt, IEEE)
        _store_rows(dk, acc_k * scale, b, skgb, ki, kj, k_ok, skgh, skgw, gy, gx, DIL_H, DIL_W,
                    head * D, skgc, D, BD)
        _store_rows(dv_out, acc_v, b, svgb, ki, kj, k_ok, svgh, svgw, gy, gx, DIL_H, DIL_W,
                    head * DV, svgc, DV, BDV)
