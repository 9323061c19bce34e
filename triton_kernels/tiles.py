"""Channel tiles: which channels a program handles, and which weight group they use.

A channel tile is ``BC`` channel lanes. Channel ``c`` uses weight group
``g(c) = c // CPG`` where ``CPG = C // Cw`` channels share a group. Two
tilings, chosen on the host by the ``GROUP_ALIGNED`` constexpr:

* group-aligned (``GROUP_ALIGNED``): a tile holds channels of one group
  only, ``c = g * CPG + b * BC + lane`` for ``lane < BC`` and
  ``b * BC + lane < CPG``; there are ``Cw * ceil(CPG / BC)`` tiles and the
  group ``g`` is a scalar, so the weight is loaded once for all the
  tile's channels (channel-shared weights: involution, attention heads;
  NCHW depth-wise, ``CPG == 1``: one channel, scalar taps);
* contiguous: ``c = t * BC + lane < C``, ``ceil(C / BC)`` tiles, and
  ``g`` is a vector of lanes (channels_last inputs with fewer than 16
  channels per group, depth-wise included).
"""

from __future__ import annotations

import triton
import triton.language as tl

#: kernel widths up to this are unrolled along a row of taps (wider ones loop)
UNROLL = tl.constexpr(16)


@triton.jit
def channel_tiles(C, CPG, BC: tl.constexpr, GROUP_ALIGNED: tl.constexpr):
    """Number of channel tiles (see the module docstring)."""
    if GROUP_ALIGNED:
        n = (C // CPG) * tl.cdiv(CPG, BC)
    else:
        n = tl.cdiv(C, BC)
    return n


@triton.jit
def channel_lanes(tile, C, CPG, BC: tl.constexpr, GROUP_ALIGNED: tl.constexpr):
    """``(c, mask, g)`` of channel tile ``tile``: ``BC`` lanes, their validity, their group.

    ``g`` is a scalar when ``GROUP_ALIGNED``, else one group per lane.
    """
    lane = tl.arange(0, BC)
    if GROUP_ALIGNED:
        per_group = tl.cdiv(CPG, BC)
        g = tile // per_group
        local = (tile - g * per_group) * BC + lane
        c = g * CPG + local
        mask = local < CPG
    else:
        c = tile * BC + lane
        mask = c < C
        g = c // CPG
    return c, mask, g



@triton.jit
def image_block(
    pid, C, CPG, Lh, Lw, BC: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    GROUP_ALIGNED: tl.constexpr,
):
    """Which ``[BC, BH, BW]`` block of an ``(N, C, Lh, Lw)`` image program ``pid`` owns.

    Programs are ordered channel tile fastest, then column, row and batch
    tiles. Returns ``(n, c, c_mask, g, rows, cols)`` with ``rows``/``cols``
    the ``BH``/``BW`` spatial indices (unmasked) and ``c, c_mask, g`` as in
    :func:`channel_lanes`.
    """
    n_ct = channel_tiles(C, CPG, BC, GROUP_ALIGNED)
    n_wt = tl.cdiv(Lw, BW)
    n_ht = tl.cdiv(Lh, BH)
    ct = pid % n_ct
    rest = pid // n_ct
    wt = rest % n_wt
    rest = rest // n_wt
    ht = rest % n_ht
    n = rest // n_ht
    c, c_mask, g = channel_lanes(ct, C, CPG, BC, GROUP_ALIGNED)
    rows = ht * BH + tl.arange(0, BH)
    cols = wt * BW + tl.arange(0, BW)
    return n, c, c_mask, g, rows, cols
