"""localconn.eager: a call skips the custom op only where nothing could see the op.

The direct path runs the op's own implementation, so its result must equal the
op's bit for bit; every context that observes the op (autograd, modes, vmap,
tracing, the profiler, compile, tensor subclasses) must still go through it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import localconn
from localconn import eager, ops


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the implementations run *directly* (the op keeps its own references)."""
    seen: list[str] = []
    for name in ("_conn2d", "_conn2d_transpose", "_corr2d"):
        impl = getattr(ops, name)

        def spy(*args, impl=impl, name=name):
            seen.append(name)
            return impl(*args)

        monkeypatch.setattr(ops, name, spy)
    yield seen


def _inputs(requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64, requires_grad=requires_grad)
    w = torch.randn(1, 6, 3, 3, 1, 1, dtype=torch.float64, requires_grad=requires_grad)
    return x, w


def test_plain_call_is_direct_and_equals_the_op(calls: list[str]) -> None:
    x, w = _inputs()
    b = torch.randn(6, dtype=torch.float64)
    y = localconn.local_conn2d(x, w, b, padding=1)
    assert calls == ["_conn2d"]
    geo = localconn.geometry.geometry_from_op_args(x.shape[2:], (3, 3), [1, 1], [1, 1, 1, 1],
                                                   [1, 1], "sliding")
    by_op = ops.conn2d(x, w, b, geo.stride, geo.padding, geo.dilation, geo.window, "")
    assert torch.equal(y, by_op)
    g = localconn.local_conn2d_transpose(y, w, (9, 11), padding=1)
    c = localconn.local_corr2d(y, x, (1, 6, 3, 3, 1, 1), padding=1)
    assert calls == ["_conn2d", "_conn2d_transpose", "_corr2d"]
    assert torch.equal(g, ops.conn2d_transpose(y, w, [9, 11], *geo_args(geo)))
    assert torch.equal(c, ops.corr2d(y, x, [1, 6, 3, 3, 1, 1], *geo_args(geo)))


def geo_args(geo) -> tuple:
    return geo.stride, geo.padding, geo.dilation, geo.window, ""


def test_a_call_that_records_a_gradient_goes_through_the_op(calls: list[str]) -> None:
    x, w = _inputs(requires_grad=True)
    y = localconn.local_conn2d(x, w, padding=1)
    assert calls == [] and y.grad_fn is not None
    # the backward runs without grad mode: its primitives go direct
    y.backward(torch.randn_like(y))
    assert sorted(calls) == ["_conn2d_transpose", "_corr2d"]
    assert x.grad is not None and w.grad is not None


def test_double_backward_records_the_backward_through_the_op(calls: list[str]) -> None:
    x, w = _inputs(requires_grad=True)
    y = localconn.local_conn2d(x, w, padding=1)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    assert gx.grad_fn is not None
    gx.sum().backward()
    assert w.grad is not None


def test_no_grad_is_direct_even_for_leaves_that_require_grad(calls: list[str]) -> None:
    x, w = _inputs(requires_grad=True)
    with torch.no_grad():
        y = localconn.local_conn2d(x, w, padding=1)
    assert calls == ["_conn2d"] and y.grad_fn is None


@pytest.mark.parametrize(
    "context",
    ["flop_counter", "profiler", "vmap", "meta", "subclass", "jit_trace"],
)
def test_observing_contexts_go_through_the_op(calls: list[str], context: str) -> None:
    x, w = _inputs()
    run = lambda x, w: localconn.local_conn2d(x, w, padding=1)  # noqa: E731
    if context == "flop_counter":
        with FlopCounterMode(display=False) as counter:
            run(x, w)
        assert counter.get_total_flops() == 2 * x.numel() * 9
    elif context == "profiler":
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run(x, w)
        assert any(e.name == "localconn::conn2d" for e in prof.events())
    elif context == "vmap":
        ys = torch.vmap(run, in_dims=(0, None))(x.unsqueeze(1), w)
        torch.testing.assert_close(ys.squeeze(1), run(x, w), rtol=0, atol=0)
        calls.remove("_conn2d")  # (the reference call above it went direct)
    elif context == "meta":
        assert run(x.to("meta"), w.to("meta")).shape == x.shape
    elif context == "subclass":

        class Logged(torch.Tensor):
            pass

        run(x.as_subclass(Logged), w)
    elif context == "jit_trace":
        traced = torch.jit.trace(run, (x, w), check_trace=False)
        assert "localconn::conn2d" in str(traced.graph)
    assert calls == []


def test_direct_is_false_under_compile() -> None:
    seen: list[bool] = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        seen.append(eager.direct(x))
        return x + 1

    torch.compile(probe, backend="eager", fullgraph=True)(torch.randn(3))
    assert seen and not any(seen)
    assert eager.direct(torch.randn(3))
