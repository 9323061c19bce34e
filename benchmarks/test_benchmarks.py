"""pytest-benchmark entry point: ``pytest benchmarks --benchmark-only``.

Drives the same registries as the CLI: every case of the ``cpu`` suite
(float32) on the CPU, of the ``paper`` suite (float16) on CUDA, NCHW, times
every provider and direction. A provider that does not run a case is
skipped with its status as the reason; one that gives a wrong answer fails.
The compile providers follow ``--quick`` rules (left out on the CPU).
Results are grouped per case and direction, so pytest-benchmark's table
compares the providers side by side; ``extra_info`` holds the byte count.
Each benchmark runs a fixed number of rounds sized from one untimed call
(about 0.3 s on the CPU, 1 s on CUDA), so the whole file takes a few minutes.

``python -m pytest tests`` never collects this file (``testpaths = tests``).
"""

from __future__ import annotations

import time
from typing import Callable

import pytest
import torch

from .bytes import op_bytes
from .cases import SUITES, Case
from .check import compare, oracle, run_once
from .directions import DIRECTIONS, direction_call
from .providers import Provider, all_providers
from .runner import classify
from .workload import Fn, Inputs, Setting, make_inputs

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SUITE = "paper" if DEVICE.type == "cuda" else "cpu"
SETTING = Setting(DEVICE, torch.float16 if DEVICE.type == "cuda" else torch.float32, "nchw", True)
PROVIDERS = all_providers()
#: each benchmark runs about this long (rounds bounded below and above)
SECONDS_PER_BENCHMARK = 1.0 if DEVICE.type == "cuda" else 0.3
MIN_ROUNDS, MAX_ROUNDS = (5, 500) if DEVICE.type == "cuda" else (3, 50)

_inputs: dict[str, Inputs] = {}
_built: dict[tuple[str, str], object] = {}


def _case_inputs(case: Case) -> Inputs:
    if case.name not in _inputs:
        _inputs.clear()  # one case's tensors alive at a time (parametrization is case-major)
        _inputs[case.name] = make_inputs(case, SETTING)
    return _inputs[case.name]


def _checked(provider: Provider, case: Case) -> Fn:
    """Build the provider for the case and check it once; skip or fail if it can't."""
    key = (provider.name, case.name)
    if key not in _built:
        status = provider.supports(case, SETTING)
        if status is None:
            inputs = _case_inputs(case)
            try:
                fn = provider.build(case, SETTING)
                got = run_once(fn, inputs, True)
            except Exception as e:
                status = classify(e)
            else:
                status = compare(case, got, oracle(case, inputs, True), SETTING.dtype) or fn
        _built[key] = status
    result = _built[key]
    if isinstance(result, str):
        if result.startswith(("wrong", "error")):
            pytest.fail(result)
        pytest.skip(result)
    return result  # type: ignore[return-value]


def _synchronized(call: Callable[[], object]) -> Callable[[], object]:
    if DEVICE.type != "cuda":
        return call

    def run() -> object:
        out = call()
        torch.cuda.synchronize()
        return out

    return run


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", SUITES[SUITE], ids=lambda c: c.name.replace(" ", "_"))
def test_benchmark(benchmark, case: Case, provider: Provider, direction: str) -> None:
    """Time one provider on one case and direction (after the correctness check)."""
    fn = _checked(provider, case)
    call = _synchronized(direction_call(fn, _case_inputs(case), direction))
    call()  # warm-up (compilation, autotuning), untimed
    t0 = time.perf_counter()
    call()
    once = time.perf_counter() - t0
    benchmark.group = f"{case.name} {direction}"
    benchmark.extra_info["bytes"] = op_bytes(case, SETTING.dtype, direction)
    benchmark.extra_info["provider_kind"] = provider.kind
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, int(SECONDS_PER_BENCHMARK / max(once, 1e-6))))
    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)
