"""Tile configurations: the autotuning spaces, their pruning, and the fixed choice.

Tiles are ``[BC, BH, BW]`` (channels x rows x columns) for ``conn`` and
``conn_transpose`` and ``[BC, BT, BH, BW]`` (``BT`` taps) for ``corr``.
NCHW tiles keep ``BC`` small and ``BW`` long (rows are contiguous);
channels_last tiles take ``BC`` wide (channels are contiguous) and few
positions.

Autotuning (``triton.autotune``) is keyed on the shape constants that
change the best tile: channels, channels per group, the tiled spatial size,
the kernel size, the window, the layout and the sharing flags (the
autotuner adds the tensors' dtypes), and ``prune_configs_by`` drops tiles
larger than the problem or of the other layout. It is off, and one fixed
tile per problem is used instead (no benchmarking, one compilation), when
running under the interpreter (``TRITON_INTERPRET=1``), under pytest
(``PYTEST_CURRENT_TEST`` is set) or with ``LOCALCONN_TRITON_AUTOTUNE=0``;
``corr2d`` also takes the fixed tile under
``torch.use_deterministic_algorithms(True)``, because its tile sets the
summation order (``conn2d``/``conn2d_transpose`` sum in tap order whatever
the tile, so they are reproducible either way).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import triton

TileFn = Callable[..., list]


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def tuning_enabled() -> bool:
    """Autotune unless interpreting, under pytest, or ``LOCALCONN_TRITON_AUTOTUNE=0``."""
    if interpreting() or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return os.environ.get("LOCALCONN_TRITON_AUTOTUNE", "1") != "0"


def p2(n: int) -> int:
    """The smallest power of two ``>= max(n, 1)``."""
    return triton.next_power_of_2(max(1, int(n)))


def _config(num_warps: int, **tile: int) -> triton.Config:
    return triton.Config(tile, num_warps=num_warps, num_stages=1)


# ------------------------------------------------- conn / conn_transpose

#: (BC, BH, BW, warps) for NCHW inputs: columns contiguous
#: (tiles of 1024 outputs take 8 warps: with 4, a 7x7 depth-wise tile needs
#: over 160 registers and spills in float16; 2 x 8 x 32 spills in the
#: channel-shared transpose with 4 or 8 warps; the 256-output tiles of one
#: channel take 2 warps: with 4, ptxas keeps a 16-byte stack frame for the
#: float16 7x7 depth-wise conn as the JIT specialises it: `.ci/triton-resources`)
_NCHW_TILES = [
    (1, 8, 32, 2), (1, 16, 32, 8), (1, 4, 64, 2), (1, 8, 64, 8), (1, 16, 16, 2),
    (1, 32, 32, 8), (4, 4, 32, 4), (4, 8, 16, 4), (8, 4, 16, 4),
    (16, 4, 16, 8), (16, 2, 32, 8), (32, 2, 16, 8),
]
#: (BC, BH, BW, warps) for channels_last inputs: channels contiguous
_CL_TILES = [
    (16, 4, 8, 4), (32, 2, 8, 4), (32, 4, 8, 8), (32, 1, 16, 4), (64, 1, 8, 4),
    (64, 2, 8, 8), (64, 4, 4, 8), (128, 1, 8, 8), (128, 2, 4, 8),
]

CONN_NCHW = [_config(w, BC=bc, BH=bh, BW=bw) for bc, bh, bw, w in _NCHW_TILES]
CONN_CL = [_config(w, BC=bc, BH=bh, BW=bw) for bc, bh, bw, w in _CL_TILES]
CONN_CONFIGS = CONN_NCHW + CONN_CL
CONN_KEY = ["C", "CPG", "H", "W", "Ho", "Wo", "KH", "KW", "WINDOW", "GROUP_ALIGNED",
            "W_H", "W_W", "CL"]


def _channel_extent(args: dict[str, Any]) -> int:
    """Channels a tile can usefully span: a group's when group-aligned, else all."""
    return args["CPG"] if args["GROUP_ALIGNED"] else args["C"]


def prune_tiles(rows: str, cols: str) -> Callable[..., list]:
    """``early_config_prune`` for ``[BC, BH, BW]`` tiles over the ``rows`` x ``cols`` sizes."""

    def prune(configs: list, named_args: dict, **kwargs: Any) -> list:
        args = {**named_args, **kwargs}
        family = CONN_CL if args["CL"] else CONN_NCHW
        bc_max, bh_max, bw_max = p2(_channel_extent(args)), p2(args[rows]), p2(args[cols])
        kept = [
            c for c in configs
            if c in family
            and c.kwargs["BC"] <= bc_max
            and c.kwargs["BH"] <= bh_max
            and c.kwargs["BW"] <= bw_max
        ]
        if kept:
            return kept
        return [min(family, key=lambda c: c.kwargs["BC"] * c.kwargs["BH"] * c.kwargs["BW"])]

    return prune


def fixed_tile(cl: bool, channels: int, rows: int, cols: int) -> dict[str, int]:
    """The tile used without autotuning (``channels``: the useful channel extent)."""
    if interpreting():  # few, large programs: the interpreter pays per operation
        if cl:
            return {"BC": min(p2(channels), 32), "BH": min(p2(rows), 8), "BW": min(p2(cols), 16),
                    "num_warps": 4}
        return {"BC": min(p2(channels), 8), "BH": min(p2(rows), 16), "BW": min(p2(cols), 16),
                "num_warps": 4}
    if cl:
        return {"BC": min(p2(channels), 32), "BH": min(p2(rows), 2), "BW": min(p2(cols), 8),
                "num_warps": 4}
    bh, bw = min(p2(rows), 8), min(p2(cols), 32)
    # 4 outputs per thread on 2 warps for the 256-output tiles (no stack frame: see
    # _NCHW_TILES; 10-20% fewer issued instructions per output, `make perf-model`)
    return {"BC": 1, "BH": bh, "BW": bw, "num_warps": 2 if bh * bw >= 256 else 4}


# ------------------------------------------------------------------ corr

#: (BC, BT, BH, BW, warps) for NCHW inputs
_CORR_NCHW_TILES = [
    (1, 64, 4, 16, 4), (1, 32, 8, 16, 4), (1, 16, 8, 32, 4), (1, 64, 8, 8, 4),
    (1, 16, 16, 16, 8), (2, 32, 4, 16, 4), (4, 16, 4, 16, 4), (8, 16, 4, 8, 4),
    (1, 8, 8, 32, 4),
]
#: (BC, BT, BH, BW, warps) for channels_last inputs (32 x 4 x 2 x 8 dropped: an 8-byte
#: stack frame in float32 under the JIT's specialisation, `.ci/triton-resources`)
_CORR_CL_TILES = [
    (32, 16, 1, 8, 4), (32, 8, 2, 8, 4), (64, 8, 1, 8, 4), (16, 16, 2, 8, 4),
    (32, 32, 1, 4, 4), (64, 16, 1, 4, 8), (8, 16, 2, 8, 4),
]

CORR_NCHW = [_config(w, BC=bc, BT=bt, BH=bh, BW=bw) for bc, bt, bh, bw, w in _CORR_NCHW_TILES]
CORR_CL = [_config(w, BC=bc, BT=bt, BH=bh, BW=bw) for bc, bt, bh, bw, w in _CORR_CL_TILES]
CORR_CONFIGS = CORR_NCHW + CORR_CL
CORR_KEY = ["N", "C", "CPG", "Ho", "Wo", "KH", "KW", "WINDOW", "REDUCE_N", "REDUCE_C",
            "REDUCE_H", "REDUCE_W", "CL", "SPLITS"]


def prune_corr(configs: list, named_args: dict, **kwargs: Any) -> list:
    """``early_config_prune`` for ``[BC, BT, BH, BW]`` tiles."""
    args = {**named_args, **kwargs}
    family = CORR_CL if args["CL"] else CORR_NCHW
    bc_max = p2(args["CPG"] if args["REDUCE_C"] else args["C"])
    bt_max = p2(args["KH"] * args["KW"])
    # a position-specific result keeps a BT x BH x BW accumulator per position: tiles of
    # 128 or more positions with 16 or more taps spill (255 registers, `.ci/triton-resources`)
    positional = not (args["REDUCE_H"] and args["REDUCE_W"])
    kept = [
        c for c in configs
        if c in family
        and c.kwargs["BC"] <= bc_max
        and c.kwargs["BT"] <= bt_max
        and c.kwargs["BH"] <= p2(args["Ho"])
        and c.kwargs["BW"] <= p2(args["Wo"])
        and not (positional and c.kwargs["BH"] * c.kwargs["BW"] >= 128 and c.kwargs["BT"] >= 16)
    ]
    if kept:
        return kept
    return [min(family, key=lambda c: c.kwargs["BC"] * c.kwargs["BT"] * c.kwargs["BH"]
                * c.kwargs["BW"])]


def fixed_corr_tile(cl: bool, channels: int, taps: int, rows: int, cols: int) -> dict[str, int]:
    """The ``corr`` tile used without autotuning (``channels``: the useful channel extent)."""
    if interpreting():
        if cl:
            tile = {"BC": min(p2(channels), 32), "BT": min(p2(taps), 16), "BH": min(p2(rows), 4),
                    "BW": min(p2(cols), 8)}
        else:
            tile = {"BC": min(p2(channels), 8), "BT": min(p2(taps), 32), "BH": min(p2(rows), 16),
                    "BW": min(p2(cols), 16)}
    elif cl:
        tile = {"BC": min(p2(channels), 32), "BT": min(p2(taps), 8), "BH": 1,
                "BW": min(p2(cols), 8)}
    else:
        tile = {"BC": min(p2(channels), 2), "BT": min(p2(taps), 32), "BH": min(p2(rows), 4),
                "BW": min(p2(cols), 16)}
    return {**tile, "num_warps": 4}
