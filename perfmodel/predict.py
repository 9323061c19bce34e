"""From counts to a time range on a GPU, and the roofline to compare it with.

For one kernel launch (:class:`KernelCost`: per-warp counts times the warps
launched, plus the compulsory DRAM bytes) each unit's busy time is its work
over its device-wide rate (:mod:`perfmodel.hardware`):

    issue      all warp-instructions / (4 per SM per clock)
    fp32 ...   each execution class / its pipe's rate
    shared     shared-memory wavefronts / (1 per SM per clock)
    l1         global and local 128-byte lines of each request / (1 per SM per clock)
    l2         global and local 32-byte sectors / (the L2's sectors per SM per clock)
    dram       compulsory bytes / measured copy bandwidth
    latency    compulsory bytes x DRAM latency / bytes the resident warps keep in flight
               (Little's law; :mod:`perfmodel.inflight`)

The SM-side units are charged for the busiest SM, which gets
``ceil(blocks / SMs)`` blocks (a grid smaller than the GPU, or a last partial
round, leaves SMs idle). The *low* end assumes the units overlap perfectly
(the busiest one sets the time) at full rate; the *high* end divides by an
attainable 80% of each rate and by the occupancy efficiency
``min(1, resident warps per scheduler / 4)`` (fewer than four resident
warps per scheduler leave latency exposed). Both add the launch overhead.
The limiter is the unit with the largest busy time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from .counts import Counts
from .hardware import Gpu, occupancy

ATTAINABLE = 0.8
WARPS_TO_HIDE_LATENCY = 4.0


@dataclass
class KernelCost:
    """One kernel launch as the model sees it."""

    name: str
    blocks: int
    threads: int  # per block
    registers: int = 0
    smem: int = 0  # bytes per block (static + dynamic)
    stack: int = 0  # bytes of local memory per thread (spills, indexed arrays)
    counts: Optional[Counts] = None  # per warp; None: a PyTorch kernel, bandwidth only
    dram_bytes: float = 0.0  # compulsory
    notes: list[str] = field(default_factory=list)

    @property
    def warps(self) -> int:
        return self.blocks * -(-self.threads // 32)


@dataclass
class Prediction:
    """A kernel's (or a call's) predicted time range on one GPU, microseconds."""

    low_us: float
    high_us: float
    limiter: str
    terms: dict[str, float]  # unit -> busy time (us) at full rate
    blocks_per_sm: int = 0
    waves: float = 0.0


def predict(k: KernelCost, gpu: Gpu) -> Prediction:
    """The time range of one launch on ``gpu``."""
    terms: dict[str, float] = {"dram": k.dram_bytes / (gpu.dram_gbps * 1e9) * 1e6}
    per_sm = 0
    waves = 0.0
    eff = 1.0
    if k.counts is not None:
        c, w = k.counts, k.warps

        def us(work: float, rate_per_sm: float) -> float:
            return work * w / gpu.per_clock(rate_per_sm) * 1e6

        terms["issue"] = us(c.issued, gpu.issue_per_sm)
        for cls, rate in (("fp32", gpu.fp32_per_sm), ("fp16x2", gpu.fp16x2_per_sm),
                          ("fp64", gpu.fp64_per_sm), ("int", gpu.int_per_sm),
                          ("conv", gpu.conv_per_sm), ("mufu", gpu.mufu_per_sm),
                          ("tensor", gpu.mma_per_sm)):
            if c.by_class.get(cls):
                terms[cls] = us(c.by_class[cls], rate)
        terms["shared"] = us(c.wavefronts, gpu.wavefronts_per_sm)
        terms["l1"] = us(c.lines, gpu.lines_per_sm)
        terms["l2"] = us(c.sectors, gpu.l2_sectors_per_sm)
        per_sm = occupancy(gpu, k.threads, k.registers, k.smem)
        if per_sm == 0:
            raise ValueError(f"{k.name}: a block of {k.threads} threads, {k.registers} registers, "
                             f"{k.smem} B shared memory does not fit on an SM")
        waves = k.blocks / (per_sm * gpu.sms)
        per_sm_blocks = math.ceil(k.blocks / gpu.sms)
        resident_warps = min(per_sm, per_sm_blocks) * -(-k.threads // 32)  # on a busy SM
        if c.inflight > 0 and k.dram_bytes > 0:
            # Little's law: DRAM bytes at most (bytes in flight) / latency
            in_flight = c.inflight * resident_warps * min(gpu.sms, k.blocks)
            terms["latency"] = k.dram_bytes * gpu.dram_latency_ns * 1e-3 / in_flight
        # the busiest SM gets ceil(blocks / SMs) blocks: SM-side units wait for it
        imbalance = gpu.sms * per_sm_blocks / k.blocks
        for t in terms:
            if t not in ("dram", "latency"):
                terms[t] *= imbalance
        warps_per_scheduler = resident_warps / 4
        eff = min(1.0, warps_per_scheduler / WARPS_TO_HIDE_LATENCY)
    limiter = max(terms, key=lambda t: terms[t])
    busy = terms[limiter]
    low = busy + gpu.launch_overhead_us
    high = busy / (ATTAINABLE * eff) + gpu.launch_overhead_us
    return Prediction(low, high, limiter, terms, per_sm, waves)


def combine(parts: list[Prediction]) -> Prediction:
    """Kernels that run one after another: times add; the limiter of the longest is kept."""
    if not parts:
        return Prediction(0.0, 0.0, "-", {})
    longest = max(parts, key=lambda p: p.high_us)
    terms: dict[str, float] = {}
    for p in parts:
        for t, v in p.terms.items():
            terms[t] = terms.get(t, 0.0) + v
    return Prediction(sum(p.low_us for p in parts), sum(p.high_us for p in parts),
                      longest.limiter, terms)


@dataclass(frozen=True)
class Roofline:
    """The least a call must do: bytes through DRAM and multiply-adds."""

    bytes: float
    macs: float

    def time_us(self, gpu: Gpu, dtype: str) -> float:
        """``max(bytes / bandwidth, 2 * macs / best unit)`` in microseconds."""
        t_mem = self.bytes / (gpu.dram_gbps * 1e9)
        t_math = 2 * self.macs / (gpu.best_tflops(dtype) * 1e12)
        return max(t_mem, t_math) * 1e6

    def bound(self, gpu: Gpu, dtype: str) -> str:
        """``"memory"`` or ``"compute"``."""
        t_mem = self.bytes / (gpu.dram_gbps * 1e9)
        return "memory" if t_mem >= 2 * self.macs / (gpu.best_tflops(dtype) * 1e12) else "compute"
