"""Triton-specific layout decisions on the host (channel tiles, SM count).

The generic stride and index-width helpers live in :mod:`localconn.strides`
(shared with the CUDA backend) and are re-exported here.
"""

from __future__ import annotations

import torch

from localconn.strides import (  # noqa: F401  (re-exported)
    INT32_LIMIT,
    channels_last,
    image_strides,
    needs_int64,
    span,
    weight_strides,
)


def group_aligned(channels_per_group: int, cl: bool) -> bool:
    """Tile channels inside one weight group (the weight is then uniform over the tile)?

    Yes for NCHW inputs: depth-wise (``CPG == 1``) then has one channel per
    program and each filter tap is a scalar in a register; shared groups
    load each weight once for all their channels. For channels_last inputs
    only with at least 16 channels per group: narrower groups would make
    too narrow channel tiles to coalesce, so those take contiguous tiles with
    one group (and weight) per lane.
    """
    return not (cl and channels_per_group < 16)


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (1 elsewhere)."""
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count
