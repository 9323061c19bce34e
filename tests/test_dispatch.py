"""Backend dispatch with stand-in backends: priority, declining with a reason, auto_devices.

A stand-in "cuda" backend (the name must be a known one) wraps the reference
kernels and records its calls; the real registry entry is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import pytest
import torch
from tolerances import assert_close

import localconn
from localconn import reference
from localconn.backends import _REGISTRY
from localconn.problem import Problem


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """Register a recording 'cuda' stand-in; yield its settings to tweak per test."""
    monkeypatch.delenv("LOCALCONN_BACKEND", raising=False)
    saved = dict(_REGISTRY)
    _REGISTRY.pop("cpu", None)  # (the stand-in is the only compiled backend)
    settings: dict = {"calls": [], "decline": None, "unavailable": None, "auto_devices": None}

    def recorded(kernel):
        def run(*args):
            settings["calls"].append(kernel.__name__)
            return kernel(*args)

        return run

    def supports(problem: Problem) -> Optional[str]:
        return settings["decline"](problem) if settings["decline"] else None

    def install() -> None:
        localconn.register_backend(
            localconn.Backend(
                "cuda",
                recorded(reference.conn2d),
                recorded(reference.conn2d_transpose),
                recorded(reference.corr2d),
                priority=100,
                available=lambda: settings["unavailable"],
                supports=supports,
                auto_devices=settings["auto_devices"],
            )
        )

    settings["install"] = install
    install()
    yield settings
    _REGISTRY.clear()
    _REGISTRY.update(saved)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 6, 6, generator=g), torch.randn(1, 4, 3, 3, 1, 1, generator=g)


def test_auto_prefers_highest_priority(stand_in: dict) -> None:
    x, w = _inputs()
    y = localconn.local_conn2d(x, w, padding=1)
    assert stand_in["calls"] == ["conn2d"]
    assert_close(y, localconn.local_conn2d(x, w, padding=1, backend="reference"))
    assert localconn.backends()["cuda"].available


def test_auto_moves_on_when_declined_forced_raises_with_reason(stand_in: dict) -> None:
    stand_in["decline"] = lambda p: "kernels wider than 2 are not supported"
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    assert stand_in["calls"] == []  # auto fell back to the reference
    with pytest.raises(localconn.BackendUnavailableError, match="wider than 2"):
        localconn.local_conn2d(x, w, padding=1, backend="cuda")


def test_unavailable_backend_reported_and_skipped(stand_in: dict) -> None:
    stand_in["unavailable"] = "no GPU here"
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    assert stand_in["calls"] == []
    status = localconn.backends()["cuda"]
    assert not status.available and status.reason == "no GPU here"
    with pytest.raises(localconn.BackendUnavailableError, match="no GPU here"):
        localconn.local_conn2d(x, w, padding=1, backend="cuda")


def test_auto_devices_limits_auto_but_not_forced(stand_in: dict) -> None:
    stand_in["auto_devices"] = ("cuda",)
    stand_in["install"]()
    x, w = _inputs()
    localconn.local_conn2d(x, w, padding=1)
    assert stand_in["calls"] == []  # CPU tensors: auto does not choose it
    localconn.local_conn2d(x, w, padding=1, backend="cuda")
    assert stand_in["calls"] == ["conn2d"]  # forced: it runs


def test_backward_uses_the_selected_backend(stand_in: dict) -> None:
    x, w = _inputs()
    x.requires_grad_(True)
    w.requires_grad_(True)
    with localconn.use_backend("cuda"):
        localconn.local_conn2d(x, w, padding=1).sum().backward()
    assert sorted(stand_in["calls"]) == ["conn2d", "conn2d_transpose", "corr2d"]


def test_declining_sees_the_problem(stand_in: dict) -> None:
    seen: list[Problem] = []
    stand_in["decline"] = lambda p: seen.append(p)  # returns None: accepts
    x, w = _inputs()
    localconn.local_conn2d(x.to(memory_format=torch.channels_last), w, padding=1)
    (p,) = seen
    assert (p.primitive, p.batch, p.channels, p.weight_shape) == ("conn2d", 2, 4, (1, 4, 3, 3, 1, 1))
    assert p.channels_last and p.mode == "static-spatial" and p.geometry.out_size == (6, 6)
