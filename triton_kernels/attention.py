"""Fused neighborhood attention, forward: softmax(scale q . k + rpb) v without the map.

For one head ``h`` and a query ``o = (y, x)`` with window start ``s(o)`` per axis
(DESIGN.md section 3, in units of the dilation inside the query's dilation group)::

    L[o, j] = scale * q[o] . k[j] + rpb[h, jy - oy + Kh - 1, jx - ox + Kw - 1]
              for the keys j of the window, -inf for every other key
    out[o]  = sum_j exp(L[o, j] - lse[o]) v[j],   lse[o] = log sum_j exp(L[o, j])

Grid: ``(query tiles, B * heads, dh * dw)``. A dilation group ``(gy, gx)``
(positions ``gy + dh i, gx + dw j``) is an image of its own in which the
window has dilation 1, so a program owns a ``BH x BW`` tile of one group's
queries (``BM = BH * BW`` rows of ``tl.dot``). The windows of a tile's queries
cover at most ``BH + Kh - 1`` key rows and ``BW + Kw - 1`` key columns of the
group (window starts never decrease along an axis): the program walks that
halo in blocks of ``KBH x KBW`` keys, computes the ``[BM, KBH * KBW]`` logits
with ``tl.dot`` (tensor cores; float32 inputs in exact IEEE arithmetic, not
TF32), masks every (query, key) pair outside the query's window with ``-inf``,
and keeps flash-attention's online softmax in float32 (base 2: the logits are
scaled by ``scale * log2 e`` in float32). The log-sum-exp is stored (natural
log) for a backward by recomputation. Keys a tile cannot reach are never
loaded; of the keys it loads, about ``Kh Kw / ((BH + Kh - 1)(BW + Kw - 1))``
take part (7 x 7 on 8 x 8 tiles: a quarter), the price of dense tiles.

Windows: ``CAUSAL = False`` the neighborhood window, ``s = clamp(i - K // 2, 0,
L_g - K)``; ``CAUSAL = True`` the causal one, ``s = i - (K - 1)``, keys before
the group's start excluded. Every query keeps at least itself.

``DOT_F32``: the operands are widened to float32 before ``tl.dot`` (exact
IEEE products, the same sums): set for bfloat16 in Triton's CPU interpreter,
whose ``tl.dot`` returns garbage for bfloat16 operands (Triton 3.9).
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # (host)
_LOG2E = tl.constexpr(LOG2E)
_LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _window_start(i, length, K: tl.constexpr, CAUSAL: tl.constexpr):
    """First key (group units) of the window of query ``i`` on an axis of ``length``."""
    if CAUSAL:
        return i - (K - 1)
    return tl.minimum(tl.maximum(i - K // 2, 0), length - K)


@triton.jit
def na_fwd_kernel(
    q, k, v, rpb, out, lse,
    H, W, HEADS, DIL_H, DIL_W, TILES_W,
    sqb, sqc, sqh, sqw,
    skb, skc, skh, skw,
    svb, svc, svh, svw,
    sob, soc, soh, sow,
    srh, sry, srx,
    qk_scale,
    D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, CAUSAL: tl.constexpr, HAS_RPB: tl.constexpr,
    IEEE: tl.constexpr, DOT_F32: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr, KBH: tl.constexpr, KBW: tl.constexpr,
):
    """One ``BH x BW`` query tile of one head and dilation group (see the module docstring)."""
    tile, bh, grp = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b, head = bh // HEADS, bh % HEADS
    gy, gx = grp // DIL_W, grp % DIL_W
    LY = (H - gy + DIL_H - 1) // DIL_H  # this group's rows and columns
    LX = (W - gx + DIL_W - 1) // DIL_W
    i0 = (tile // TILES_W) * BH
    j0 = (tile % TILES_W) * BW
    if (i0 < LY) & (j0 < LX):
        BM: tl.constexpr = BH * BW
        BN: tl.constexpr = KBH * KBW
        m = tl.arange(0, BM)
        qi, qj = i0 + m // BW, j0 + m % BW
        q_ok = (qi < LY) & (qj < LX)
        sy = _window_start(qi, LY, KH, CAUSAL)
        sx = _window_start(qj, LX, KW, CAUSAL)
        d = tl.arange(0, BD)
        dv = tl.arange(0, BDV)
        qb = q + b.to(tl.int64) * sqb
        kb = k + b.to(tl.int64) * skb
        vb = v + b.to(tl.int64) * svb
        q_pix = (gy + DIL_H * qi) * sqh + (gx + DIL_W * qj) * sqw
        qt = tl.load(qb + q_pix[:, None] + (head * D + d)[None, :] * sqc,
                     mask=q_ok[:, None] & (d < D)[None, :], other=0.0)
        if DOT_F32:
            qt = qt.to(tl.float32)

        # the halo of the tile's windows, clipped to the group
        last_i = tl.minimum(i0 + BH, LY) - 1
        last_j = tl.minimum(j0 + BW, LX) - 1
        r_lo = tl.maximum(_window_start(i0, LY, KH, CAUSAL), 0)
        r_hi = _window_start(last_i, LY, KH, CAUSAL) + KH  # exclusive
        c_lo = tl.maximum(_window_start(j0, LX, KW, CAUSAL), 0)
        c_hi = _window_start(last_j, LX, KW, CAUSAL) + KW

        m_i = tl.full([BM], float("-inf"), tl.float32)
        l_i = tl.zeros([BM], tl.float32)
        acc = tl.zeros([BM, BDV], tl.float32)
        n = tl.arange(0, BN)
        for r0 in range(r_lo, r_hi, KBH):
            for c0 in range(c_lo, c_hi, KBW):
                ki, kj = r0 + n // KBW, c0 + n % KBW
                k_ok = (ki < r_hi) & (kj < c_hi)
                k_pix = (gy + DIL_H * ki) * skh + (gx + DIL_W * kj) * skw
                kt = tl.load(kb + k_pix[:, None] + (head * D + d)[None, :] * skc,
                             mask=k_ok[:, None] & (d < D)[None, :], other=0.0)
                if DOT_F32:
                    kt = kt.to(tl.float32)
                if IEEE:
                    s = tl.dot(qt, tl.trans(kt), input_precision="ieee")
                else:
                    s = tl.dot(qt, tl.trans(kt))
                s = s * qk_scale  # scale * log2(e): the softmax runs in base 2
                inside = (q_ok[:, None] & k_ok[None, :]
                          & (ki[None, :] >= sy[:, None]) & (ki[None, :] < sy[:, None] + KH)
                          & (kj[None, :] >= sx[:, None]) & (kj[None, :] < sx[:, None] + KW))
                if HAS_RPB:
                    dy = ki[None, :] - qi[:, None] + (KH - 1)
                    dx = kj[None, :] - qj[:, None] + (KW - 1)
                    bias = tl.load(rpb + head * srh + dy * sry + dx * srx, mask=inside, other=0.0)
                    s += bias.to(tl.float32) * _LOG2E
                s = tl.where(inside, s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, 1))
                m_use = tl.where(m_new > float("-inf"), m_new, 0.0)  # rows with no key yet
                p = tl.exp2(s - m_use[:, None])
                alpha = tl.exp2(m_i - m_use)
                l_i = l_i * alpha + tl.sum(p, 1)
                v_pix = (gy + DIL_H * ki) * svh + (gx + DIL_W * kj) * svw
                vt = tl.load(vb + v_pix[:, None] + (head * DV + dv)[None, :] * svc,
                             mask=k_ok[:, None] & (dv < DV)[None, :], other=0.0)
                if DOT_F32:
                    vt = vt.to(tl.float32)
                if IEEE:
                    acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt,
                                                        input_precision="ieee")
                else:
                    acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt)
                m_i = m_new
        l_i = tl.where(q_ok, l_i, 1.0)  # (rows past the group: nothing to normalise)
        acc = acc / l_i[:, None]
        o_pix = (gy + DIL_H * qi) * soh + (gx + DIL_W * qj) * sow
        ob = out + b.to(tl.int64) * sob
        tl.store(ob + o_pix[:, None] + (head * DV + dv)[None, :] * soc,
                 acc.to(out.dtype.element_ty), mask=q_ok[:, None] & (dv < DV)[None, :])
        # lse (B, heads, H, W), contiguous
        lse_off = (bh.to(tl.int64) * H + gy + DIL_H * qi) * W + gx + DIL_W * qj
        tl.store(lse + lse_off, (m_i + tl.log2(l_i)) * _LN2, mask=q_ok)
