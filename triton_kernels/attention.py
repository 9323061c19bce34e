"""Fused neighborhood attention, forward: softmax(scale q . k + rpb) v without the map.

For one head ``h`` and a query ``o = (y, x)`` with window start ``s(o)`` per axis
(docs/design.md section 3, in units of the dilation inside the query's dilation group)::

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

Windows (``WINDOW``, docs/design.md section 3 in group units): ``NEIGHBORHOOD``
``s = clamp(i - K // 2, 0, L_g - K)``; ``CAUSAL`` ``s = i - (K - 1)``; ``SLIDING``
``s = i - K // 2`` (keys outside the image excluded, as the unfused path masks
its padding); ``BLOCK`` ``s = (i // K) K``, with Swin's shift: the image is
already rolled, and a query sees only the keys of its Swin region (per axis
``(0:-K, -K:-s, -s:)``). Every query keeps at least itself.

``DOT_F32``: the operands are widened to float32 before ``tl.dot`` (exact
IEEE products, the same sums): set for bfloat16 in Triton's CPU interpreter,
whose ``tl.dot`` returns garbage for bfloat16 operands (Triton 3.9).
"""

from __future__ import annotations

import triton
import triton.language as tl

from localconn.fused_attention import WINDOW_CODES

LOG2E = 1.4426950408889634  # (host)
_LOG2E = tl.constexpr(LOG2E)
_LN2 = tl.constexpr(0.6931471805599453)


#: the windows' codes (``WINDOW``), shared with the CPU's fused kernel
WINDOWS = WINDOW_CODES


@triton.jit
def _window_start(i, length, K: tl.constexpr, WINDOW: tl.constexpr):
    """First key (group units) of the window of query ``i`` on an axis of ``length`` (may be
    negative for the causal and sliding windows, whose keys outside the axis are excluded)."""
    if WINDOW == 1:  # causal
        return i - (K - 1)
    if WINDOW == 2:  # sliding: K // 2 keys before the query
        return i - K // 2
    if WINDOW == 3:  # block
        return (i // K) * K
    return tl.minimum(tl.maximum(i - K // 2, 0), length - K)


@triton.jit
def _region(x, length, K: tl.constexpr, shift):
    """Swin's region of position ``x`` of the shifted axis: slices ``(0:-K, -K:-s, -s:)``."""
    return (x >= length - K).to(tl.int32) + (x >= length - shift).to(tl.int32)


@triton.jit
def _program_tile(H, W, HEADS, DIL_H, DIL_W, TILES_W, BH: tl.constexpr, BW: tl.constexpr):
    """This program's batch, head, ``bh = b * HEADS + head``, dilation group ``(gy, gx)``, the
    group's rows and columns ``(LY, LX)`` and its tile's first row and column ``(i0, j0)``."""
    tile, bh, grp = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    gy, gx = grp // DIL_W, grp % DIL_W
    LY = (H - gy + DIL_H - 1) // DIL_H
    LX = (W - gx + DIL_W - 1) // DIL_W
    return (bh // HEADS, bh % HEADS, bh, gy, gx, LY, LX, (tile // TILES_W) * BH,
            (tile % TILES_W) * BW)


@triton.jit
def _pixels(ptr, b, sb, i, j, sh, sw, gy, gx, DIL_H, DIL_W, chan0, sc, BDIM: tl.constexpr):
    """``[len(i), BDIM]`` addresses of channels ``chan0 ..`` of the group's pixels ``(i, j)``."""
    c = tl.arange(0, BDIM)
    pix = (gy + DIL_H * i) * sh + (gx + DIL_W * j) * sw
    return ptr + b.to(tl.int64) * sb + pix[:, None] + (chan0 + c)[None, :] * sc


@triton.jit
def _load_rows(ptr, b, sb, i, j, ok, sh, sw, gy, gx, DIL_H, DIL_W, chan0, sc,
               DIM: tl.constexpr, BDIM: tl.constexpr, DOT_F32: tl.constexpr):
    """``[len(i), BDIM]``: a head's ``DIM`` channels of pixels ``(i, j)`` (0 where not ``ok``
    and past ``DIM``), widened to float32 with ``DOT_F32``."""
    c = tl.arange(0, BDIM)
    t = tl.load(_pixels(ptr, b, sb, i, j, sh, sw, gy, gx, DIL_H, DIL_W, chan0, sc, BDIM),
                mask=ok[:, None] & (c < DIM)[None, :], other=0.0)
    if DOT_F32:
        t = t.to(tl.float32)
    return t


@triton.jit
def _store_rows(ptr, val, b, sb, i, j, ok, sh, sw, gy, gx, DIL_H, DIL_W, chan0, sc,
                DIM: tl.constexpr, BDIM: tl.constexpr):
    """Stores ``val`` (``[len(i), BDIM]``) where :func:`_load_rows` would load."""
    c = tl.arange(0, BDIM)
    tl.store(_pixels(ptr, b, sb, i, j, sh, sw, gy, gx, DIL_H, DIL_W, chan0, sc, BDIM),
             val.to(ptr.dtype.element_ty), mask=ok[:, None] & (c < DIM)[None, :])


@triton.jit
def _key_range(first, last, L, K: tl.constexpr, WINDOW: tl.constexpr):
    """Keys ``[lo, hi)`` of the windows of queries ``first .. last`` (window starts never
    decrease), clipped to the group."""
    return (tl.maximum(_window_start(first, L, K, WINDOW), 0),
            tl.minimum(_window_start(last, L, K, WINDOW) + K, L))


@triton.jit
def _query_range(first, last, L, K: tl.constexpr, WINDOW: tl.constexpr):
    """Queries ``[lo, hi)`` whose windows hold some of the keys ``first .. last``: the least
    ``i`` with ``s(i) + K - 1 >= first`` and the largest with ``s(i) <= last``."""
    if WINDOW == 1:  # causal: s(i) = i - (K - 1)
        lo, hi = first, last + K
    elif WINDOW == 2:  # sliding: s(i) = i - K // 2
        lo, hi = first - (K - 1 - K // 2), last + K // 2 + 1
    elif WINDOW == 3:  # block
        lo, hi = (first // K) * K, (last // K) * K + K
    else:  # neighborhood: s(i) = clamp(i - K // 2, 0, L - K)
        lo = tl.where(first >= K, first - (K - 1 - K // 2), 0)
        hi = tl.where(last >= L - K, L, last + K // 2 + 1)
    return tl.maximum(lo, 0), tl.minimum(hi, L)


@triton.jit
def _inside(qi, qj, ki, kj, LY, LX, SHIFT_H, SHIFT_W, KH: tl.constexpr, KW: tl.constexpr,
            WINDOW: tl.constexpr):
    """``[len(qi), len(ki)]``: key ``(ki, kj)`` is in the window of query ``(qi, qj)``, for
    keys of :func:`_key_range` (inside the group and past no window's end, so only the
    sliding window, whose windows reach past the group, checks the group's end; the block
    window with a shift checks the query's Swin region too). Two unsigned compares a pair:
    ``0 <= ki - s(qi) < Kh`` and the same for columns."""
    dy = ki[None, :] - _window_start(qi, LY, KH, WINDOW)[:, None]
    dx = kj[None, :] - _window_start(qj, LX, KW, WINDOW)[:, None]
    ok = (dy.to(tl.uint32) < KH) & (dx.to(tl.uint32) < KW)
    if WINDOW == 2:
        ok &= (ki < LY)[None, :] & (kj < LX)[None, :]
    if WINDOW == 3:
        ok &= (_region(qi, LY, KH, SHIFT_H)[:, None] == _region(ki, LY, KH, SHIFT_H)[None, :]) \
            & (_region(qj, LX, KW, SHIFT_W)[:, None] == _region(kj, LX, KW, SHIFT_W)[None, :])
    return ok


@triton.jit
def _bias_offsets(head, qi, qj, ki, kj, srh, sry, srx, KH: tl.constexpr, KW: tl.constexpr):
    """``[len(qi), len(ki)]`` offsets of ``rpb[head, ki - qi + Kh - 1, kj - qj + Kw - 1]``."""
    return (head * srh + (ki[None, :] - qi[:, None] + (KH - 1)) * sry
            + (kj[None, :] - qj[:, None] + (KW - 1)) * srx)


@triton.jit
def _dot(a, b, IEEE: tl.constexpr):
    """``tl.dot`` with float32 accumulation, exact IEEE products with ``IEEE`` (not TF32)."""
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def na_fwd_kernel(
    q, k, v, rpb, out, lse,
    H, W, HEADS, DIL_H, DIL_W, SHIFT_H, SHIFT_W, TILES_W,
    sqb, sqc, sqh, sqw,
    skb, skc, skh, skw,
    svb, svc, svh, svw,
    sob, soc, soh, sow,
    srh, sry, srx,
    qk_scale,
    D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, WINDOW: tl.constexpr, HAS_RPB: tl.constexpr,
    IEEE: tl.constexpr, DOT_F32: tl.constexpr,
    BH: tl.constexpr, BW: tl.constexpr, KBH: tl.constexpr, KBW: tl.constexpr,
):
    """One ``BH x BW`` query tile of one head and dilation group (see the module docstring)."""
    b, head, bh, gy, gx, LY, LX, i0, j0 = _program_tile(H, W, HEADS, DIL_H, DIL_W, TILES_W,
                                                        BH, BW)
    if (i0 < LY) & (j0 < LX):
        m = tl.arange(0, BH * BW)
        qi, qj = i0 + m // BW, j0 + m % BW
        q_ok = (qi < LY) & (qj < LX)
        qt = _load_rows(q, b, sqb, qi, qj, q_ok, sqh, sqw, gy, gx, DIL_H, DIL_W, head * D, sqc,
                        D, BD, DOT_F32)
        r_lo, r_hi = _key_range(i0, tl.minimum(i0 + BH, LY) - 1, LY, KH, WINDOW)
        c_lo, c_hi = _key_range(j0, tl.minimum(j0 + BW, LX) - 1, LX, KW, WINDOW)

        m_i = tl.full([BH * BW], float("-inf"), tl.float32)
        l_i = tl.zeros([BH * BW], tl.float32)
        acc = tl.zeros([BH * BW, BDV], tl.float32)
        n = tl.arange(0, KBH * KBW)
        for r0 in range(r_lo, r_hi, KBH):
            for c0 in range(c_lo, c_hi, KBW):
                ki, kj = r0 + n // KBW, c0 + n % KBW
                k_ok = (ki < r_hi) & (kj < c_hi)
                kt = _load_rows(k, b, skb, ki, kj, k_ok, skh, skw, gy, gx, DIL_H, DIL_W,
                                head * D, skc, D, BD, DOT_F32)
                s = _dot(qt, tl.trans(kt), IEEE)
                # (rows of queries past the group are computed but never stored)
                inside = _inside(qi, qj, ki, kj, LY, LX, SHIFT_H, SHIFT_W, KH, KW, WINDOW)
                if HAS_RPB:  # base 2: scale * log2(e) on the logits, then the bias
                    roff = _bias_offsets(head, qi, qj, ki, kj, srh, sry, srx, KH, KW)
                    bias = tl.load(rpb + roff, mask=inside, other=0.0).to(tl.float32)
                    s = s * qk_scale + bias * _LOG2E
                    c = 1.0
                else:  # the scale folded into the exponent's multiply-add
                    c = qk_scale
                s = tl.where(inside, s, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, 1))
                m_use = tl.where(m_new > float("-inf"), m_new, 0.0)  # rows with no key yet
                p = tl.exp2(s * c - (m_use * c)[:, None])
                alpha = tl.exp2((m_i - m_use) * c)
                l_i = l_i * alpha + tl.sum(p, 1)
                vt = _load_rows(v, b, svb, ki, kj, k_ok, svh, svw, gy, gx, DIL_H, DIL_W,
                                head * DV, svc, DV, BDV, DOT_F32)
                acc = acc * alpha[:, None] + _dot(p.to(vt.dtype), vt, IEEE)
                m_i = m_new
        l_i = tl.where(q_ok, l_i, 1.0)  # (rows past the group: nothing to normalise)
        _store_rows(out, acc / l_i[:, None], b, sob, qi, qj, q_ok, soh, sow, gy, gx, DIL_H,
                    DIL_W, head * DV, soc, DV, BDV)
        # lse (B, heads, H, W), contiguous
        lse_off = (bh.to(tl.int64) * H + gy + DIL_H * qi) * W + gx + DIL_W * qj
        c_lse = 1.0 if HAS_RPB else qk_scale  # m_i in the units of the exponent's input
        tl.store(lse + lse_off, (m_i * c_lse + tl.log2(l_i)) * _LN2, mask=q_ok)
