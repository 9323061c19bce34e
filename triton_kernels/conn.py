"""``conn2d``: the layer, ``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]``.

Grid: one program per ``(n, channel tile, output row tile, output column
tile)``, flattened into axis 0 (channel tile fastest). A program owns a
``[BC, BH, BW]`` block of outputs (channels x rows x columns), accumulates
in float32 (float64 for float64 inputs) over the ``Kh x Kw`` taps and
stores once, so every output element is written exactly once.

Per tap ``(kh, kw)`` it loads the input block ``x[n, c, i(oh, kh), i(ow, kw)]``
(masked to zero outside the image: padding) and the weight, whose load is
shaped by the dims the weight varies along inside the tile:

* spatial-shared (depth-wise, static or dynamic: ``Hw = Ww = 1``): the tap
  is one scalar per ``(n', g)`` held in a register (group-aligned tiles) or
  one value per channel lane (``[BC, 1, 1]``, channels_last);
* position-specific (involution, attention: ``Hw = Ho``, ``Ww = Wo``) with
  group-aligned channel tiles: a ``[1, BH, BW]`` tile along positions,
  shared by the ``BC`` channels of the group;
* anything else: the broadcast of the varying dims (a generic strided
  gather; broadcast dims have stride 0 and are never expanded).

Layouts: NCHW tiles are ``BC`` small and ``BW`` along the contiguous
columns; channels_last tiles are ``BC`` wide along the contiguous channels
(see :mod:`configs`). ``BIG`` switches all index arithmetic to int64.
``W_MASKED`` (host: ``W_H or W_W or not GROUP_ALIGNED``) says whether the
weight load is a masked tile rather than one scalar.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .tiles import UNROLL, image_block
from .window import input_index


@triton.jit
def _tap(acc, x_row, row_mask, w_tap, w_mask, ow, kw, W, KW: tl.constexpr, SW, PW, DW, sxw,
         WINDOW: tl.constexpr, W_MASKED: tl.constexpr):
    """``acc += W[.., kh, kw, ..] * x[.., i(oh, kh), i(ow, kw)]`` for one tap."""
    iw = input_index(ow, kw, W, KW, SW, PW, DW, WINDOW)
    mask = row_mask & (iw >= 0) & (iw < W)
    xv = tl.load(x_row + iw * sxw, mask=mask, other=0.0)
    if W_MASKED:
        wv = tl.load(w_tap, mask=w_mask, other=0.0)
    else:  # one scalar for the whole tile
        wv = tl.load(w_tap)
    return acc + wv.to(acc.dtype) * xv.to(acc.dtype)


@triton.jit
def conn_kernel(
    x, w, bias, y,
    C, H, W, Ho, Wo, CPG,
    sxn, sxc, sxh, sxw,
    swn, swg, swkh, swkw, swh, sww,
    sb,
    syn, syc, syh, syw,
    SH, PH, DH, SW, PW, DW,
    KH: tl.constexpr, KW: tl.constexpr, WINDOW: tl.constexpr,
    GROUP_ALIGNED: tl.constexpr, W_H: tl.constexpr, W_W: tl.constexpr, W_MASKED: tl.constexpr,
    HAS_BIAS: tl.constexpr, BIG: tl.constexpr, F64: tl.constexpr, CL: tl.constexpr,
    BC: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
):
    """One ``[BC, BH, BW]`` output block of ``conn2d`` (see the module docstring)."""
    pid = tl.program_id(0)
    if BIG:
        pid = pid.to(tl.int64)
    n, c, c_mask, g, oh, ow = image_block(pid, C, CPG, Ho, Wo, BC, BH, BW, GROUP_ALIGNED)
    c3 = c[:, None, None]
    cm3 = c_mask[:, None, None]
    oh3 = oh[None, :, None]
    ow3 = ow[None, None, :]

    # the weight of this tile, along the dims it varies in (stride 0 elsewhere)
    w_mask = tl.full([1, 1, 1], 1, tl.int1)
    if GROUP_ALIGNED:
        w_ptr = w + n * swn + g * swg
    else:
        w_ptr = w + n * swn + g[:, None, None] * swg
        w_mask = w_mask & cm3
    if W_H:
        w_ptr = w_ptr + oh3 * swh
        w_mask = w_mask & (oh3 < Ho)
    if W_W:
        w_ptr = w_ptr + ow3 * sww
        w_mask = w_mask & (ow3 < Wo)

    if F64:
        acc = tl.zeros([BC, BH, BW], dtype=tl.float64)
    else:
        acc = tl.zeros([BC, BH, BW], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias + c3 * sb, mask=cm3, other=0.0).to(acc.dtype)

    x_ptr = x + n * sxn + c3 * sxc
    for kh in range(KH):
        ih = input_index(oh3, kh, H, KH, SH, PH, DH, WINDOW)
        row_mask = cm3 & (ih >= 0) & (ih < H)
        x_row = x_ptr + ih * sxh
        w_row = w_ptr + kh * swkh
        if KW <= UNROLL:
            for kw in tl.static_range(KW):
                acc = _tap(acc, x_row, row_mask, w_row + kw * swkw, w_mask, ow3, kw,
                           W, KW, SW, PW, DW, sxw, WINDOW, W_MASKED)
        else:
            for kw in range(KW):
                acc = _tap(acc, x_row, row_mask, w_row + kw * swkw, w_mask, ow3, kw,
                           W, KW, SW, PW, DW, sxw, WINDOW, W_MASKED)

    y_ptr = y + n * syn + c3 * syc + oh3 * syh + ow3 * syw
    tl.store(y_ptr, acc.to(y.dtype.element_ty), mask=cm3 & (oh3 < Ho) & (ow3 < Wo))
