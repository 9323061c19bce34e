"""The flat integer lists the CUDA backend's kernels take (csrc/meta.h unpacks them).

One list per call describes the problem without tensors: dtype, window,
sizes, the per-axis window parameters and every tensor's element strides
(0 along size-1 / broadcast dims). The PyTorch binding (``localconn._C``)
and the CPU emulator of the kernels (``tests/cuda_emulator.py``) both take
exactly these lists, so the emulator tests the same arguments the GPU gets.
Keep the order in step with ``csrc/meta.h``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .geometry import WINDOWS, Axis, Geometry
from .strides import image_strides, weight_strides

#: the ``DType`` codes of csrc/portable.h
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 0,
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.float64: 3,
}

#: csrc/meta.h: kConnMetaLen, kCorrMetaLen
CONN_META_LEN = 34
CORR_META_LEN = 29

#: the kernel ids of csrc/plan.h (``Kernel``), as the binding reports them
KERNEL_NAMES = (
    "conn_tile", "conn_tile_fixed", "conn_elem", "corr_tile", "corr_elem", "conn_rows", "corr_rows",
    "corr_lanes", "conn_strip", "corr_strip", "conn_mma", "corr_mma",
    "conn_mma_cl", "corr_mma_cl", "conn_band", "conn_batch",
    "corr_batch", "conn_batch_wide", "conn_pos", "corr_pos", "conn_planes",
    "corr_pixels", "conn_sample", "corr_sample", "corr_batch_wide",
    "corr_batch_large", "corr_reg", "conn_reg", "conn_band_cl", "conn_wide",
    "conn_pos_mma", "conn_batch_large", "corr_taps_mma",
    "corr_taps_mma_cl", "corr_band",
)


def _axis(a: Axis) -> list[int]:
    return [a.in_size, a.out_size, a.kernel, a.stride, a.pad_begin, a.dilation]


def problem_meta(dtype: torch.dtype, geo: Geometry, N: int, C: int, Cw: int) -> list[int]:
    """``[dtype, window, N, C, C // Cw, h axis (6), w axis (6)]``."""
    return [
        DTYPE_CODES[dtype], WINDOWS.index(geo.window), N, C, C // Cw, *_axis(geo.h), *_axis(geo.w)
    ]


def conn_meta(
    src: torch.Tensor, weight: torch.Tensor, bias_stride: int, dst: torch.Tensor, geo: Geometry
) -> list[int]:
    """The list for ``conn2d`` (src = x, dst = y) and ``conn2d_transpose`` (src = g).

    Example::

        >>> len(conn_meta(x, w, 0, y, geo)) == CONN_META_LEN
        True
    """
    N, C = src.shape[:2]
    meta = [
        *problem_meta(src.dtype, geo, N, C, weight.shape[1]),
        *image_strides(src),
        *weight_strides(weight),
        int(weight.shape[4] > 1),
        int(weight.shape[5] > 1),
        bias_stride,
        *image_strides(dst),
    ]
    assert len(meta) == CONN_META_LEN
    return meta


def corr_meta(
    a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int], geo: Geometry
) -> list[int]:
    """The list for ``corr2d``: problem, ``a`` and ``b`` strides, ``Nw, Cw, Hw, Ww``."""
    Nw, Cw, _, _, Hw, Ww = (int(s) for s in weight_shape)
    N, C = a.shape[:2]
    meta = [
        *problem_meta(a.dtype, geo, N, C, Cw),
        *image_strides(a),
        *image_strides(b),
        Nw, Cw, Hw, Ww,
    ]
    assert len(meta) == CORR_META_LEN
    return meta
