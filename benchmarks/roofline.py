"""The bandwidth roof: measured device-to-device copy bandwidth, and achieved GB/s.

At the start of a run one large ``dst.copy_(src)`` is timed with the same
timer as the cases; a copy reads and writes every byte once, so its
bandwidth is ``2 * nbytes / time``. Each case's achieved bandwidth is its
explicitly counted bytes (:mod:`benchmarks.bytes`) over its median time.
"""

from __future__ import annotations

from typing import Optional

import torch

from .timing import measure

#: size of each copy buffer: 1 GiB on a GPU (far beyond L2), 64 MiB on the CPU
COPY_BYTES = {"cuda": 2**30, "cpu": 2**26}


def copy_bandwidth_gbps(device: torch.device, quick: bool = False) -> float:
    """Device-to-device copy bandwidth in GB/s (10^9 bytes per second)."""
    nbytes = COPY_BYTES.get(device.type, 2**26)
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    t = measure(lambda: dst.copy_(src), device, quick)
    return 2 * nbytes / (t.ms * 1e-3) / 1e9


def achieved_gbps(nbytes: int, ms: Optional[float]) -> Optional[float]:
    """``nbytes`` moved in ``ms`` milliseconds, in GB/s (None if not timed)."""
    if ms is None or ms <= 0:
        return None
    return nbytes / (ms * 1e-3) / 1e9


def pct_of(gbps: Optional[float], copy_gbps: float) -> Optional[float]:
    """``gbps`` as a percentage of the copy bandwidth."""
    if gbps is None or not copy_gbps:
        return None
    return 100.0 * gbps / copy_gbps
