"""``auto`` between compiled backends: the one measured fastest, per problem.

When ``auto`` (see :mod:`localconn.backends`) finds more than one compiled
backend that would run a problem (today: ``triton`` and ``cuda`` on CUDA
tensors), the first call with that *signature* (the
:class:`~localconn.problem.Problem` plus every tensor argument's shape,
strides, dtype and 16-byte alignment) runs each of them once as a warm-up
(which compiles and autotunes Triton), then times ``REPS`` runs of each with
CUDA events on the current stream, and keeps the backend with the lowest
median time for every later call with that signature. The choice is made per
primitive, so a layer's forward, input gradient and weight gradient may each
run on a different backend. The reference backend never competes; it is only
the fallback when no compiled backend supports a problem.

The static priority order (``triton``, then ``cuda``) is used instead, and
nothing is timed, when

* ``LOCALCONN_AUTOTUNE=0`` is set in the environment,
* ``torch.are_deterministic_algorithms_enabled()`` is true: each backend is
  deterministic on its own, but a choice that depends on timing noise could
  differ between two runs of the same program,
* the current CUDA stream is being captured into a CUDA graph (a choice made
  before the capture is still used).

A backend whose kernel raises while being timed is passed over for that
signature with a ``RuntimeWarning`` naming the error (forcing it with
``backend=`` shows the error); when every one raises, the first error is
raised.

So ``auto`` runs whichever backend is faster per case on the GPU at hand,
with no table of cases measured elsewhere.

Example::

    >>> y = localconn.local_conn2d(x.cuda(), w.cuda(), padding=3)  # measures once
    >>> localconn.autoselect.choices()
    {'conn2d static-spatial float16 nchw (64, 96, 56, 56) sliding k7x7 s1x1 p3/3/3/3 d1x1':
     ('cuda', {'triton': 9.1e-05, 'cuda': 8.2e-05})}
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings
from collections.abc import Sequence
from typing import Callable

import torch

from .backends import AUTO, Backend, eligible, forced, requested
from .problem import Problem

ENV_VAR = "LOCALCONN_AUTOTUNE"
#: timed runs per backend after the warm-up
REPS = 5
REFERENCE = "reference"

_log = logging.getLogger(__name__)

#: signature -> (chosen backend name, {backend name: median seconds}, description)
_CHOICES: dict[tuple, tuple[str, dict[str, float], str]] = {}


def measure(run: Callable[[], object], device: torch.device) -> float:
    """Median seconds of ``REPS`` runs of ``run`` after one warm-up run.

    CUDA events on the current stream for CUDA tensors, wall clock otherwise.
    """
    run()
    if device.type != "cuda":
        times = []
        for _ in range(REPS):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    stream = torch.cuda.current_stream(device)
    events = []
    for _ in range(REPS):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        run()
        end.record(stream)
        events.append((start, end))
    events[-1][1].synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events) / 1e3


def timer(backend: Backend, run: Callable[[], object], device: torch.device) -> float:
    """The timer :func:`choose` uses: seconds for ``run`` of ``backend`` (tests replace it)."""
    return measure(run, device)


def enabled(device: torch.device) -> bool:
    """Whether ``auto`` may time backends now (see the module docstring)."""
    if os.environ.get(ENV_VAR, "1").strip() == "0":
        return False
    if torch.are_deterministic_algorithms_enabled():
        return False
    return not (device.type == "cuda" and torch.cuda.is_current_stream_capturing())


def _signature(problem: Problem, kernel: str, args: Sequence[object]) -> tuple:
    layout = tuple(
        (tuple(a.shape), a.stride(), a.dtype, a.data_ptr() % 16)
        if isinstance(a, torch.Tensor)
        else None
        for a in args
    )
    return (kernel, problem, layout)


def _describe(problem: Problem) -> str:
    image = (problem.batch, problem.channels, *problem.geometry.in_size)
    geo = problem.geometry
    (kh, kw), (sh, sw) = geo.kernel, geo.stride
    layout = "channels_last" if problem.channels_last else "nchw"
    dtype = str(problem.dtype).removeprefix("torch.")
    return (
        f"{problem.primitive} {problem.mode} {dtype} {layout} {image} {geo.window} "
        f"k{kh}x{kw} s{sh}x{sw} p{'/'.join(map(str, geo.padding))} "
        f"d{'x'.join(map(str, geo.dilation))}"
    )


def choose(problem: Problem, explicit: str, kernel: str, args: Sequence[object]) -> Backend:
    """The backend that runs ``kernel(*args)`` for ``problem``.

    A requested backend (argument, context or environment) is returned as
    :func:`~localconn.backends.select` would; ``auto`` is the measured choice
    described in the module docstring.
    """
    name = requested(explicit)
    if name != AUTO:
        return forced(problem, name)
    ranked = eligible(problem)
    compiled = [b for b in ranked if b.name != REFERENCE]
    if len(compiled) < 2:
        return ranked[0]
    key = _signature(problem, kernel, args)
    known = _CHOICES.get(key)
    if known is not None:
        for backend in compiled:
            if backend.name == known[0]:
                return backend
    if not enabled(problem.device):
        return compiled[0]
    description = _describe(problem)
    times: dict[str, float] = {}
    failures: list[tuple[Backend, Exception]] = []
    with torch.autocast(problem.device.type, enabled=False):
        for b in compiled:
            try:
                times[b.name] = timer(b, lambda b=b: getattr(b, kernel)(*args), problem.device)
            except Exception as e:  # noqa: BLE001  (a kernel that fails is passed over, loudly)
                failures.append((b, e))
    if not times:
        raise failures[0][1]
    for b, e in failures:
        warnings.warn(
            f"localconn auto: backend {b.name!r} failed on {description} "
            f"({type(e).__name__}: {e}); passed over for this problem. "
            f"backend={b.name!r} runs it and raises.",
            RuntimeWarning,
            stacklevel=2,
        )
    best = min((b for b in compiled if b.name in times), key=lambda b: times[b.name])
    _CHOICES[key] = (best.name, times, description)
    _log.info(
        "localconn auto: %s -> %s (%s)",
        description,
        best.name,
        ", ".join(f"{n} {t * 1e6:.1f} us" for n, t in times.items()),
    )
    return best


def choices() -> dict[str, tuple[str, dict[str, float]]]:
    """The choices made so far: description -> (backend, {backend: median seconds}).

    Example::

        >>> localconn.autoselect.choices()
        {'corr2d static-spatial bfloat16 channels_last (64, 96, 56, 56) sliding k7x7 ...':
         ('triton', {'triton': 0.00021, 'cuda': 0.00025})}
    """
    return {desc: (name, dict(times)) for name, times, desc in _CHOICES.values()}


def clear() -> None:
    """Forget every choice (the next call of each signature measures again)."""
    _CHOICES.clear()
