"""Case tables shared by the compiled-backend tests (Triton, CUDA): small shapes
that cover every window, sharing mode, geometry, layout and gradient path.
"""

from __future__ import annotations

from typing import Optional

import torch
from backend_checks import rand, window_kwargs
from oracle import oracle_args, oracle_conn, oracle_conn_transpose, oracle_corr
from tolerances import assert_close

import localconn

N, C, G = 2, 6, 3
WINDOWS = {
    "sliding": ((3, 3), (9, 10), window_kwargs("sliding", 1, 1)),
    "neighborhood": ((3, 4), (7, 10), window_kwargs("neighborhood", dilation=(2, 1))),
    "block": ((2, 3), (6, 9), window_kwargs("block")),
}


GEOMETRIES = [
    # (window, kernel, in_size, stride, padding, dilation)
    ("sliding", (1, 1), (5, 6), 1, 0, 1),
    ("sliding", (3, 3), (7, 8), 2, 1, 1),
    ("sliding", (2, 4), (6, 7), 1, "same", 1),
    ("sliding", (5, 3), (9, 8), (2, 3), (2, 1), 1),
    ("sliding", (3, 3), (7, 7), 1, "same", 2),
    ("sliding", (3, 2), (9, 8), 3, (1, 0), (2, 1)),
    ("sliding", (4, 2), (9, 6), 2, "valid", 2),
    ("sliding", (2, 5), (6, 11), (1, 2), (0, 2), (1, 2)),
    ("sliding", (7, 7), (12, 13), 1, 3, 1),
    ("sliding", (6, 6), (10, 9), 1, "same", 1),
    ("neighborhood", (1, 1), (4, 5), 1, 0, 1),
    ("neighborhood", (3, 3), (7, 8), 1, 0, 1),
    ("neighborhood", (2, 4), (6, 7), 1, 0, 1),
    ("neighborhood", (3, 2), (7, 9), 1, 0, 2),
    ("neighborhood", (5, 3), (6, 7), 1, 0, (1, 2)),
    ("neighborhood", (4, 4), (9, 8), 1, 0, 2),
    ("neighborhood", (6, 6), (6, 6), 1, 0, 1),
    ("block", (1, 1), (3, 4), 1, 0, 1),
    ("block", (3, 3), (9, 6), 1, 0, 1),
    ("block", (2, 4), (6, 8), 1, 0, 1),
    ("block", (4, 6), (4, 6), 1, 0, 1),
]
GEOMETRY_MODES = {
    "static-dw": (False, "C", False, False),
    "dynamic-grouped-positions": (True, "G", True, True),
}


def geometry_id(geo: tuple) -> str:
    window, k, size, s, p, d = geo
    return f"{window[:5]}-k{k[0]}x{k[1]}-in{size[0]}x{size[1]}-s{s}-p{p}-d{d}".replace(" ", "")


LAYOUT_MODES = ["static-dw", "dynamic-dw", "involution", "small-groups", "attention"]


def paper_case(mode: str, dtype: torch.dtype, cl: bool, g: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], dict]:
    """Inputs of one of the paper's modes (attention weights in the heads-last layout)."""
    if mode == "static-dw":
        x = rand((2, 4, 9, 11), g, dtype, cl)
        kw = window_kwargs("sliding", 1, 3)
        return x, rand((1, 4, 7, 7, 1, 1), g, dtype), rand((4,), g, dtype), kw
    if mode == "dynamic-dw":
        x = rand((2, 4, 9, 11), g, dtype, cl)
        kw = window_kwargs("sliding", 2, 1)
        return x, rand((2, 4, 3, 3, 1, 1), g, dtype), None, kw
    if mode == "involution":  # 2 groups of 16 channels, per-position weights
        x = rand((2, 32, 6, 7), g, dtype, cl)
        kw = window_kwargs("sliding", 1, 1)
        return x, rand((2, 2, 3, 3, 6, 7), g, dtype), rand((32,), g, dtype), kw
    if mode == "small-groups":  # 4 groups of 3 channels (channels_last: a group per lane)
        x = rand((2, 12, 7, 8), g, dtype, cl)
        kw = window_kwargs("sliding", 1, 1)
        return x, rand((2, 4, 3, 3, 7, 8), g, dtype), None, kw
    # attention: 2 heads of 16 channels, neighborhood window 5x5, (N, G, H, W, K, K) stored
    x = rand((2, 32, 7, 8), g, dtype, cl)
    attn = rand((2, 2, 7, 8, 5, 5), g, dtype).softmax(-1)
    return x, attn.permute(0, 1, 4, 5, 2, 3), None, window_kwargs("neighborhood")


GRAD_CASES = {
    "static-dw": ((1, 6, 3, 3, 1, 1), window_kwargs("sliding", 1, 1), (7, 8)),
    "dynamic-dw-strided": ((2, 6, 3, 2, 1, 1), window_kwargs("sliding", 2, (1, 0), (1, 2)), (9, 8)),
    "involution": ((2, 3, 3, 3, 7, 8), window_kwargs("sliding", 1, 1), (7, 8)),
    "attention": ((2, 2, 3, 4, 7, 8), window_kwargs("neighborhood", dilation=(2, 1)), (7, 8)),
    "block-unshared": ((1, 6, 2, 4, 6, 8), window_kwargs("block"), (6, 8)),
}


def weight_views(g: torch.Generator) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor]]:
    """``(x, kw, views)``: permuted, expanded (stride 0), transposed-kernel and sliced weights."""
    x = rand((2, 6, 7, 8), g)
    views = {
        "heads-last": rand((2, 3, 7, 8, 3, 3), g).permute(0, 1, 4, 5, 2, 3),
        "expanded-all": rand((1, 1, 3, 3, 1, 1), g).expand(2, 6, 3, 3, 7, 8),
        "expanded-rows": rand((1, 3, 3, 3, 1, 8), g).expand(2, 3, 3, 3, 7, 8),
        "kernel-transposed": rand((1, 6, 3, 3, 1, 1), g).transpose(2, 3),
        "sliced": rand((2, 12, 3, 3, 7, 8), g)[:, ::2],
    }
    return x, window_kwargs("sliding", 1, 1), views


def nan_inf_inputs(g: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """``(x, w, wdw, kw)`` with NaN/Inf in x and in weights of taps that read the padding.

    ``w`` is position-specific, ``wdw`` depth-wise; Inf taps of ``wdw`` sit where a
    transpose reads rows (tap (0, 1)) and columns (tap (1, 2)) outside g, and a NaN tap
    (2, 0) left of the centre, whose transpose reads past g's last column for the
    input's last column: they must not form ``Inf * 0`` or ``NaN * 0`` there.
    """
    x = rand((2, 6, 7, 8), g)
    x[0, 1, 3, 4] = float("inf")
    x[1, 2, 0, 0] = float("nan")
    w = rand((2, 3, 3, 3, 7, 8), g)
    w[0, 0, 0, 0, 0, 0] = float("inf")  # tap (0, 0) of output (0, 0) reads the padding
    w[1, 2, 2, 2, 6, 7] = float("-inf")
    wdw = rand((1, 6, 3, 3, 1, 1), g)
    wdw[0, 3, 0, 1] = float("inf")
    wdw[0, 4, 1, 2] = float("-inf")
    wdw[0, 5, 2, 0] = float("nan")
    return x, w, wdw, window_kwargs("sliding", 1, 1)


def check_float64_against_oracle(backend: str, g: torch.Generator) -> None:
    """float64 (accumulating in float64) on ``backend`` meets the float64 tolerance."""
    x = rand((2, 6, 8, 9), g, torch.float64)
    w = rand((2, 3, 3, 2, 8, 9), g, torch.float64)
    go = rand((2, 6, 8, 9), g, torch.float64)
    kw = window_kwargs("sliding", 1, "same")
    o = oracle_args((3, 2), 1, "same", 1, "sliding")
    assert_close(localconn.local_conn2d(x, w, backend=backend, **kw), oracle_conn(x, w, **o),
                 what="conn2d float64")
    assert_close(localconn.local_conn2d_transpose(go, w, (8, 9), backend=backend, **kw),
                 oracle_conn_transpose(go, w, (8, 9), **o), what="conn2d_transpose float64")
    assert_close(localconn.local_corr2d(go, x, w.shape, backend=backend, **kw),
                 oracle_corr(go, x, w.shape, **o), what="corr2d float64")
