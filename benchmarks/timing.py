"""Timing: CUDA events on a GPU, wall clock on the CPU; median and p20/p80.

CUDA: ``triton.testing.do_bench`` (which flushes the L2 cache between runs)
with quantiles when Triton is importable, else an equivalent loop of CUDA
events with an L2 flush before each run. CPU: ``time.perf_counter`` around
each call, after a few warm-up calls; the runner times a row's providers in
turn (:func:`time_cpu_in_turn`). Warm-up calls (Triton autotuning,
``torch.compile``) are never timed.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: median and the 20th/80th percentiles."""

    ms: float
    p20: float
    p80: float


@dataclass(frozen=True)
class Budget:
    """How long to measure: warm-up and measurement time (ms), repetition bounds."""

    warmup_ms: float
    rep_ms: float
    min_reps: int
    max_reps: int


def budget(device: torch.device, quick: bool) -> Budget:
    """The measurement budget for ``device`` (``quick``: fewer repetitions)."""
    if device.type == "cuda":
        return Budget(10, 40, 10, 1000) if quick else Budget(25, 150, 20, 10000)
    # (CPU --quick: a warm-up and at least 5 samples; 2 samples without one made the median
    # a coin toss on a shared machine, e.g. fwd slower than fwd+bwd in the same run)
    return Budget(50, 300, 5, 50) if quick else Budget(200, 1000, 7, 200)


def _quantiles(samples: list[float]) -> Timing:
    if len(samples) == 1:
        return Timing(samples[0], samples[0], samples[0])
    q = statistics.quantiles(samples, n=10, method="inclusive")
    return Timing(statistics.median(samples), q[1], q[7])


def _triton_do_bench() -> Optional[Callable]:
    try:
        from triton.testing import do_bench
    except Exception:
        return None
    return do_bench


def time_cuda(fn: Callable[[], object], b: Budget) -> Timing:
    """CUDA-event timing of ``fn`` (already warmed up once by the caller)."""
    do_bench = _triton_do_bench()
    if do_bench is not None:
        try:
            ms, p20, p80 = do_bench(
                fn, warmup=b.warmup_ms, rep=b.rep_ms, quantiles=[0.5, 0.2, 0.8]
            )
            return Timing(float(ms), float(p20), float(p80))
        except TypeError:  # an old/new signature: fall back to our own loop
            pass
    return _time_cuda_events(fn, b)


def _time_cuda_events(fn: Callable[[], object], b: Budget) -> Timing:
    flush = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device="cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(3):
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 3, 1e-3)
    for _ in range(max(1, int(b.warmup_ms / estimate))):
        fn()
    reps = int(min(b.max_reps, max(b.min_reps, b.rep_ms / estimate)))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        flush.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return _quantiles([s.elapsed_time(e) for s, e in zip(starts, ends)])


def time_cpu(fn: Callable[[], object], b: Budget) -> Timing:
    """Wall-clock timing of ``fn`` (already warmed up once by the caller)."""
    deadline = time.perf_counter() + b.warmup_ms / 1e3
    while time.perf_counter() < deadline:
        fn()
    samples: list[float] = []
    stop = time.perf_counter() + b.rep_ms / 1e3
    while len(samples) < b.min_reps or (
        len(samples) < b.max_reps and time.perf_counter() < stop
    ):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return _quantiles(samples)


def time_cpu_in_turn(fns: Sequence[Callable[[], object]], b: Budget) -> list[Union[Timing, Exception]]:
    """Wall-clock timing of several calls sampled in turn: A, B, C, then C, B, A, ...

    On a shared machine the load moves between one call's samples and the next's (two
    back-to-back ``--quick`` CPU runs: times x0.70-1.34 between the 10th and 90th
    percentile, 5 of 42 verdicts flipped; NOTES.md), so calls compared with each other
    are timed over the same seconds: each round takes one sample of every call, in an
    order reversed every round (none always runs after the same one). Each sample is
    the second of two calls in a row, so that it starts with its own data in the caches
    as a loop of one call would (not with what the other calls left). Every call is
    warmed up by the caller once, then here for ``b.warmup_ms`` in rounds; sampling
    stops when each has ``b.min_reps`` samples and ``len(fns) * b.rep_ms`` have passed,
    or at ``b.max_reps``. A call that raises is dropped from the rounds and its
    exception returned in its place.

    Example::

        >>> a, b = time_cpu_in_turn([lambda: sum(range(100)), lambda: None],
        ...                         budget(torch.device("cpu"), True))
    """
    n = len(fns)
    result: list[Union[Timing, Exception, None]] = [None] * n
    samples: list[list[float]] = [[] for _ in range(n)]
    live = list(range(n))

    def one(i: int, timed: bool = True) -> Optional[float]:
        try:
            if timed:  # (after an untimed call: the caches hold this call's data again)
                fns[i]()
            t0 = time.perf_counter()
            fns[i]()
            return (time.perf_counter() - t0) * 1e3
        except Exception as e:  # noqa: BLE001  (reported as that call's result)
            result[i] = e
            live.remove(i)
            return None

    deadline = time.perf_counter() + b.warmup_ms / 1e3
    while live and time.perf_counter() < deadline:
        for i in list(live):
            one(i, timed=False)
    stop = time.perf_counter() + n * b.rep_ms / 1e3
    rounds = 0
    while live:
        reps = min(len(samples[i]) for i in live)
        if reps >= b.max_reps or (reps >= b.min_reps and time.perf_counter() >= stop):
            break
        for i in list(live) if rounds % 2 == 0 else list(reversed(live)):
            if i in live:
                t = one(i)
                if t is not None:
                    samples[i].append(t)
        rounds += 1
    return [r if r is not None else _quantiles(s) for r, s in zip(result, samples)]


def measure(fn: Callable[[], object], device: torch.device, quick: bool) -> Timing:
    """Median and p20/p80 of ``fn``'s run time on ``device``, in ms."""
    b = budget(device, quick)
    if device.type == "cuda":
        return time_cuda(fn, b)
    return time_cpu(fn, b)


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> Optional[float]:
    """Extra memory one call of ``fn`` allocates at its peak (MB).

    CUDA: the caching allocator's peak. CPU (Linux, glibc): the process's peak resident
    set (``VmHWM``, reset through ``/proc/self/clear_refs``) over its resident set before
    the call, after ``malloc_trim(0)`` has returned the heap's free memory to the system
    (so a block the call reuses from the heap counts as it is touched again). Nothing
    about ``malloc`` is changed, so timings before and after are unaffected. None where
    neither is available.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    libc = _glibc_with_proc()
    if device.type != "cpu" or libc is None:
        return None
    gc.collect()
    libc.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) / 1024


_GLIBC: list[Optional[ctypes.CDLL]] = []


def _glibc_with_proc() -> Optional[ctypes.CDLL]:
    """glibc, when it and /proc/self/clear_refs are here (Linux), else None."""
    if not _GLIBC:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim  # noqa: B018  (present: glibc)
            Path("/proc/self/clear_refs").write_text("5")
            _GLIBC.append(libc if _status_kib("VmHWM") > 0 else None)
        except (OSError, AttributeError):
            _GLIBC.append(None)
    return _GLIBC[0]


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
