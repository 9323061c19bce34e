"""Case tables shared by the compiled-backend tests (Triton, CUDA): small shapes
that cover every window, sharing mode, geometry, layout and gradient path.
"""

from __future__ import annotations

from typing import Optional

import torch
from backend_checks import rand, window_kwargs

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
