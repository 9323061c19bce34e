"""A small run of every CUDA kernel, for ``compute-sanitizer`` (memcheck, racecheck).

Run by ``.ci/gpu-check`` as ``compute-sanitizer --tool memcheck python tests/sanitize_cuda.py``
(and ``--tool racecheck``). Each case runs the three primitives on the
``cuda`` backend in every dtype, covering each kernel of csrc/plan.h: the
register fast path and the run-time tile (conn2d and the flipped transpose),
the per-element kernels (channels_last, neighborhood and block windows,
position-specific weights) and every corr2d kernel (tiles, per element,
channels_last rows in row chunks, channels_last lanes) with split reductions, and
the routes through NCHW planes (conn2d) and channels_last pixels (corr2d).
Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import torch

import localconn
from localconn import cuda_backend

CASES = [
    # (name, x shape, weight shape, window kwargs, channels_last)
    ("dw 3x3 fixed", (2, 4, 13, 17), (1, 4, 3, 3, 1, 1), {"padding": 1}, False),
    ("dyn-dw 7x7 fixed", (2, 4, 13, 17), (2, 4, 7, 7, 1, 1), {"padding": 3}, False),
    ("dw 7x7 wide rows (two bands a plane)", (1, 3, 9, 1000), (1, 3, 7, 7, 1, 1),
     {"padding": 3}, False),
    ("dw 7x7 on 7x7 planes (16-bit: the batch on tensor cores; float32 conn_reg, corr_reg)", (17, 12, 7, 7),
     (1, 12, 7, 7, 1, 1), {"padding": 3}, False),
    ("dw 7x7 on 14x14 planes, 17 samples (16-bit: conn_batch_wide, corr_batch_wide; float32 conn_reg, corr_reg)",
     (17, 5, 14, 14), (1, 5, 7, 7, 1, 1), {"padding": 3}, False),
    ("dw 7x7 on 28x28 planes, 17 samples (16-bit: conn_batch_large, corr_batch_large)",
     (17, 3, 28, 28), (1, 3, 7, 7, 1, 1), {"padding": 3}, False),
    ("dw 7x7 on 56x56 planes, 17 samples (16-bit: conn_batch_large's 32 x 32 tiles)",
     (17, 3, 56, 56), (1, 3, 7, 7, 1, 1), {"padding": 3}, False),
    ("dw 7x7 on 28x28 planes, channels_last (16-bit: conn_batch_large's 16 x 32 tiles of two channels)",
     (17, 3, 28, 28), (1, 3, 7, 7, 1, 1), {"padding": 3}, True),
    ("dw 3x3 on 11x13 planes, channels_last (16-bit: the same)", (18, 6, 11, 13),
     (1, 6, 3, 3, 1, 1), {"padding": 1}, True),
    ("dyn-dw 7x7 on 14x14 planes (16-bit: a plane a warp on tensor cores, grid 16 wide, and corr_reg; float32 conn_reg, corr_reg)",
     (19, 5, 14, 14), (19, 5, 7, 7, 1, 1), {"padding": 3}, False),
    ("dyn-dw 5x5 on 7x7 planes, channels_last (conn_reg, corr_reg, 4 samples a block)", (19, 6, 7, 7),
     (19, 6, 5, 5, 1, 1), {"padding": 2}, True),
    ("dyn-dw 7x7 on 7x7 planes (conn_reg with its rows unrolled, corr_reg)",
     (19, 6, 7, 7), (19, 6, 7, 7, 1, 1), {"padding": 3}, False),
    ("dyn-dw 3x3 on 8x8 planes (16-bit: conn_sample, corr_sample, grid 8 wide)",
     (19, 5, 8, 8), (19, 5, 3, 3, 1, 1), {"padding": 1}, False),
    ("dw 5x5 padding (1, 3) (strips)", (2, 4, 13, 17), (1, 4, 5, 5, 1, 1),
     {"padding": (1, 3)}, False),
    ("dw 31x31 fixed (float32: conn_wide, a strip cut by the edge)", (1, 2, 33, 35),
     (1, 2, 31, 31, 1, 1), {"padding": 15}, False),
    ("dw 13x13 column padding 4 (float32: conn_tile_fixed)", (1, 2, 15, 15), (1, 2, 13, 13, 1, 1),
     {"padding": (6, 4)}, False),
    ("dw 13x13 NCHW 16 x 20 (float32 weight gradient on pixels: corr_rows)", (2, 5, 16, 20),
     (1, 5, 13, 13, 1, 1), {"padding": 6}, False),
    ("dw 13x13 channels_last (16-bit weight gradient: corr_taps_mma_cl, two column tiles)",
     (2, 8, 21, 40), (1, 8, 13, 13, 1, 1), {"padding": 6}, True),
    ("dyn-dw 7x7 on 19x23 planes, channels_last (16-bit weight gradient: corr_taps_mma_cl, "
     "a filter per sample, a last band of three rows)", (3, 8, 19, 23), (3, 8, 7, 7, 1, 1),
     {"padding": 3}, True),
    ("dw 31x31 NCHW 37 x 40 (16-bit weight gradient: corr_taps_mma, five bands, the ring's "
     "mirrored rows, two column tiles)", (2, 3, 37, 40), (1, 3, 31, 31, 1, 1), {"padding": 15},
     False),
    ("dw strided run-time", (2, 4, 13, 17), (1, 4, 3, 2, 1, 1),
     {"stride": 2, "padding": 1, "dilation": (1, 2)}, False),
    ("involution (conn_pos: a strip cut by the edge)", (2, 8, 9, 11), (2, 2, 3, 3, 9, 11),
     {"padding": 1}, False),
    ("involution 7x7, 24 channels a group, channels_last", (3, 48, 7, 7), (3, 2, 7, 7, 7, 7),
     {"padding": 3}, True),
    ("involution 14x14, 12 channels a group (16-bit: conn_pos_mma, two column tiles)",
     (2, 24, 14, 14), (2, 2, 7, 7, 14, 14), {"padding": 3}, False),
    ("attention", (2, 8, 9, 11), (2, 2, 5, 5, 9, 11), {"window": "neighborhood"}, False),
    ("swin block", (2, 8, 8, 12), (2, 2, 4, 4, 8, 12), {"window": "block"}, False),
    ("dw channels_last (float32: conn_band_cl, 16 channels of a 32-channel block)", (2, 16, 9, 11),
     (1, 16, 3, 3, 1, 1), {"padding": 1}, True),
    ("dw NCHW across a band (float32: conn_band_cl's planes, 37 channels, rows of 28 and 19)",
     (2, 37, 9, 28), (1, 37, 7, 7, 1, 1), {"padding": 3}, False),
    ("dw NCHW across a band, rows not 16 bytes", (2, 37, 9, 19), (2, 37, 5, 5, 1, 1),
     {"padding": 2}, False),
    ("dw 5x5 channels_last (16-bit: tensor cores)", (2, 16, 17, 19), (1, 16, 5, 5, 1, 1),
     {"padding": 2}, True),
    ("dw 13x13 channels_last, 6 channels (pixels not 16 bytes: conn_rows)", (1, 6, 15, 16),
     (1, 6, 13, 13, 1, 1), {"padding": 6}, True),
    ("dw 13x13 channels_last (row chunks; conn2d on planes)", (1, 40, 15, 16), (1, 40, 13, 13, 1, 1),
     {"padding": 6}, True),
    ("dw strided channels_last (any window)", (2, 40, 9, 11), (2, 40, 3, 2, 1, 1),
     {"stride": 2, "padding": 1}, True),
    ("attention channels_last", (2, 16, 9, 11), (2, 4, 3, 3, 9, 11),
     {"window": "neighborhood"}, True),
]


def main() -> None:
    if localconn.backends()["cuda"].reason:
        raise SystemExit(f"cuda backend unavailable: {localconn.backends()['cuda'].reason}")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        for splits in (0, 3):
            cuda_backend.FORCE_SPLITS = splits
            for _name, xs, ws, kw, cl in CASES:
                x = torch.randn(xs, generator=gen, device="cuda", dtype=dtype)
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                w = torch.randn(ws, generator=gen, device="cuda", dtype=dtype)
                y = localconn.local_conn2d(x, w, backend="cuda", **kw)
                localconn.local_conn2d_transpose(y, w, xs[2:], backend="cuda", **kw)
                localconn.local_corr2d(y, x, ws, backend="cuda", **kw)
            torch.cuda.synchronize()
    print(f"ran {len(CASES)} cases x 4 dtypes x 2 split settings on the cuda backend")


if __name__ == "__main__":
    main()
