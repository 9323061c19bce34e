"""``auto``'s measured choice between compiled backends (localconn.autoselect).

Two recording stand-ins take the names "triton" (priority 10) and "cuda"
(priority 5) and wrap the reference kernels; a fake timer gives each
(backend, primitive) a chosen time, so the tests decide which is "faster"
and check that auto follows the measurement, caches it per signature, and
falls back to the priority order where it must not time anything.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from tolerances import assert_close

import localconn
from localconn import autoselect, reference
from localconn.backends import _REGISTRY


class Bench:
    """The stand-ins' call log, the fake timer and its table of times."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (backend, primitive) of every kernel run
        self.timed: list[tuple[str, str]] = []  # the same, for runs made by the timer
        self.seconds: dict[tuple[str, str], float] = {}

    def backend(self, name: str, priority: int) -> localconn.Backend:
        def recorded(kernel):
            def run(*args):
                self.calls.append((name, kernel.__name__))
                return kernel(*args)

            return run

        return localconn.Backend(
            name,
            recorded(reference.conn2d),
            recorded(reference.conn2d_transpose),
            recorded(reference.corr2d),
            priority=priority,
        )

    def timer(self, backend: localconn.Backend, run, device: torch.device) -> float:
        run()
        key = self.calls.pop()  # the timer's own run is not a dispatched call
        assert key[0] == backend.name and device.type == "cpu"
        self.timed.append(key)
        return self.seconds.get(key, self.seconds.get((key[0], "*"), 1.0))

    def set(self, backend: str, seconds: float, primitive: str = "*") -> None:
        self.seconds[(backend, primitive)] = seconds


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    monkeypatch.delenv("LOCALCONN_BACKEND", raising=False)
    monkeypatch.delenv(autoselect.ENV_VAR, raising=False)
    saved = dict(_REGISTRY)
    _REGISTRY.pop("cpu", None)  # (the stand-ins are the only compiled backends)
    b = Bench()
    localconn.register_backend(b.backend("triton", 10))
    localconn.register_backend(b.backend("cuda", 5))
    monkeypatch.setattr(autoselect, "timer", b.timer)
    autoselect.clear()
    yield b
    autoselect.clear()
    _REGISTRY.clear()
    _REGISTRY.update(saved)


def _inputs(n: int = 2, c: int = 4, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, size, size, generator=g)
    return x, torch.randn(1, c, 3, 3, 1, 1, generator=g)


@pytest.mark.parametrize("fast", ["triton", "cuda"])
def test_auto_runs_the_faster_backend(bench: Bench, fast: str) -> None:
    bench.set(fast, 1e-5)
    bench.set({"triton": "cuda", "cuda": "triton"}[fast], 2e-5)
    x, w = _inputs()
    y = localconn.local_conn2d(x, w, padding=1)
    assert sorted(bench.timed) == [("cuda", "conn2d"), ("triton", "conn2d")]
    assert bench.calls == [(fast, "conn2d")]
    assert_close(y, localconn.local_conn2d(x, w, padding=1, backend="reference"))
    ((name, times),) = autoselect.choices().values()
    assert name == fast and times == {
        "triton": bench.seconds[("triton", "*")],
        "cuda": bench.seconds[("cuda", "*")],
    }


def test_choice_is_cached_per_signature(bench: Bench) -> None:
    bench.set("cuda", 1e-5)
    x, w = _inputs()
    for _ in range(3):
        localconn.local_conn2d(x, w, padding=1)
    assert len(bench.timed) == 2  # measured once
    assert bench.calls == [("cuda", "conn2d")] * 3
    # every part of the signature is a new case: size, layout, dtype, padding, strides
    variants = [
        (_inputs(size=7)[0], w, 1),
        (x.to(memory_format=torch.channels_last), w, 1),
        (x.double(), w.double(), 1),
        (x, w, 0),
        (x[:, :, :, :5], w, 1),
    ]
    for xv, wv, pad in variants:
        localconn.local_conn2d(xv, wv, padding=pad)
    assert len(bench.timed) == 2 * (1 + len(variants))
    assert len(autoselect.choices()) == 1 + len(variants)
    autoselect.clear()
    localconn.local_conn2d(x, w, padding=1)
    assert len(bench.timed) == 2 * (2 + len(variants))


def test_each_primitive_gets_its_own_choice(bench: Bench) -> None:
    bench.set("cuda", 1e-5, "conn2d")
    bench.set("triton", 1e-5, "conn2d_transpose")
    bench.set("cuda", 1e-5, "corr2d")
    x, w = _inputs()
    x.requires_grad_(True)
    w.requires_grad_(True)
    y = localconn.local_conn2d(x, w, padding=1)
    gx, gw = torch.autograd.grad(y.square().sum(), (x, w))
    assert sorted(bench.calls) == [
        ("cuda", "conn2d"),
        ("cuda", "corr2d"),
        ("triton", "conn2d_transpose"),
    ]
    xr, wr = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
    yr = localconn.local_conn2d(xr, wr, padding=1, backend="reference")
    rx, rw = torch.autograd.grad(yr.square().sum(), (xr, wr))
    assert_close(gx, rx)
    assert_close(gw, rw)


@pytest.mark.parametrize("why", ["env", "deterministic"])
def test_priority_order_where_timing_is_off(
    bench: Bench, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.set("cuda", 1e-6)  # would win if timed
    x, w = _inputs()
    if why == "env":
        monkeypatch.setenv(autoselect.ENV_VAR, "0")
        localconn.local_conn2d(x, w, padding=1)
    else:
        was = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            localconn.local_conn2d(x, w, padding=1)
        finally:
            torch.use_deterministic_algorithms(was)
    assert bench.timed == [] and autoselect.choices() == {}
    assert bench.calls == [("triton", "conn2d")]


def test_an_earlier_choice_survives_where_timing_is_off(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.set("cuda", 1e-6)
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    monkeypatch.setenv(autoselect.ENV_VAR, "0")  # as during a CUDA graph capture
    localconn.local_conn2d(x, w, padding=1)
    assert bench.calls == [("cuda", "conn2d")] * 2 and len(bench.timed) == 2


def test_forced_backend_is_never_timed(bench: Bench) -> None:
    bench.set("cuda", 1e-6)
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1, backend="triton")
    with localconn.use_backend("triton"):
        localconn.local_conn2d(x, w, padding=1)
    assert bench.timed == [] and bench.calls == [("triton", "conn2d")] * 2


def test_one_compiled_backend_is_not_timed_and_reference_never_competes(bench: Bench) -> None:
    del _REGISTRY["cuda"]
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    assert bench.timed == [] and bench.calls == [("triton", "conn2d")]


def test_a_declining_backend_is_not_timed(bench: Bench) -> None:
    _REGISTRY["cuda"].supports = lambda problem: "not this one"
    bench.set("cuda", 1e-6)
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    assert bench.timed == [] and bench.calls == [("triton", "conn2d")]


def test_a_removed_choice_is_measured_again(bench: Bench) -> None:
    bench.set("cuda", 1e-6)
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    _REGISTRY["cuda"].available = lambda: "gone"
    localconn.register_backend(bench.backend("reference", 0))  # a third one, never timed
    localconn.local_conn2d(x, w, padding=1)
    assert bench.calls == [("cuda", "conn2d"), ("triton", "conn2d")]
    assert len(bench.timed) == 2  # only triton is left among the compiled ones: no timing


def test_measure_runs_warmup_then_reps_and_returns_the_median() -> None:
    runs: list[int] = []
    seconds = autoselect.measure(lambda: runs.append(1), torch.device("cpu"))
    assert len(runs) == 1 + autoselect.REPS
    assert 0.0 <= seconds < 0.1


def test_a_failing_backend_is_passed_over_with_a_warning(bench: Bench) -> None:
    def broken(*args):
        raise RuntimeError("out of resources")

    _REGISTRY["cuda"].conn2d = broken
    bench.set("cuda", 1e-6)
    x, w = _inputs()
    with pytest.warns(RuntimeWarning, match="'cuda' failed on conn2d.*out of resources"):
        y = localconn.local_conn2d(x, w, padding=1)
    assert bench.calls == [("triton", "conn2d")]
    assert_close(y, localconn.local_conn2d(x, w, padding=1, backend="reference"))
    localconn.local_conn2d(x, w, padding=1)  # cached: no second warning, no timing
    assert bench.calls == [("triton", "conn2d")] * 2
    _REGISTRY["triton"].conn2d = broken
    with pytest.raises(RuntimeError, match="out of resources"):
        localconn.local_conn2d(x, w, padding=2)  # every backend fails: the error
