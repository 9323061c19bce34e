"""PyTorch integration (docs/design.md sections 5-7): compile, autocast, layouts, backends."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from random_data import randn, randomize
from tolerances import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

import localconn
from localconn import LocalConn2d

N, C, G, K, H, W = 2, 8, 2, 3, 6, 9


def static_model() -> nn.Module:
    torch.manual_seed(0)
    return randomize(
        nn.Sequential(
            LocalConn2d(C, 3),
            nn.GELU(),
            LocalConn2d(C, 3, share="none", input_size=(H, W), window="block"),
            LocalConn2d(C, (3, 5), stride=2, share="channel", groups=G, input_size=(H, W)),
        )
    )


def dynamic_model() -> nn.Module:
    torch.manual_seed(0)
    return randomize(
        nn.Sequential(
            LocalConn2d(C, 3, dynamic=True, window="neighborhood"),
            LocalConn2d(C, 3, stride=2, dynamic=True, share="channel", groups=G),
        )
    )


MODELS: dict[str, Callable[[], nn.Module]] = {"static": static_model, "dynamic": dynamic_model}


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameter gradients by name (each must exist)."""
    out = {}
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} has no grad"
        out[name] = p.grad.clone()
    return out


# --------------------------------------------------------------------------- #
# torch.compile
# --------------------------------------------------------------------------- #


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_compile_fullgraph_matches_eager_without_recompiles(kind: str) -> None:
    """fullgraph compile == eager (forward and backward); same shapes never recompile."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    eager = MODELS[kind]()
    model = copy.deepcopy(eager)
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    for step in range(2):
        x = randn(N, C, H, W, seed=10 + step)
        xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        guard = (
            torch._dynamo.config.patch(error_on_recompile=True)
            if step
            else (contextlib.nullcontext())
        )
        with guard:
            yc = compiled(xc)
        ye = eager(xe)
        gy = randn(*ye.shape, seed=20 + step)
        yc.backward(gy)
        ye.backward(gy)
        assert_close(yc, ye, what=f"{kind} compiled forward, step {step}")
        assert_close(xc.grad, xe.grad, what=f"{kind} compiled input grad, step {step}")
        ge, gc = grads(eager), grads(model)
        for name in ge:
            # parameter grads are reduced over the batch and positions
            assert_close(gc[name], ge[name], what=f"{kind} compiled grad of {name}", scale=10)
        eager.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
    assert counter.frame_count == 1, f"compiled {counter.frame_count} times"
    torch._dynamo.reset()


class _Recorder(TorchDispatchMode):
    """Records every ``localconn::`` op that reaches the dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func.namespace == "localconn":
            self.calls.setdefault(str(func), (func, args, kwargs))
        return func(*args, **kwargs)


def _fresh(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().clone().requires_grad_(v.is_floating_point())
    if isinstance(v, (list, tuple)):
        return type(v)(_fresh(u) for u in v)
    return v


@pytest.mark.slow
@pytest.mark.parametrize("window", ["sliding", "neighborhood"])
def test_primitives_are_custom_ops_passing_opcheck(window: str) -> None:
    """Forward and backward dispatch ``localconn::`` custom ops that pass opcheck."""
    kw: dict[str, Any] = (
        {"stride": 2, "padding": 1} if window == "sliding" else {"window": window, "dilation": 2}
    )
    x = randn(N, C, H, W, seed=1, dtype=torch.float64).requires_grad_()
    ho, wo = ((H + 1) // 2, (W + 1) // 2) if window == "sliding" else (H, W)
    w = randn(N, G, K, K, ho, wo, seed=2, dtype=torch.float64).requires_grad_()
    rec = _Recorder()
    with rec:
        y = localconn.local_conn2d(x, w, **kw)
        y.backward(randn(*y.shape, seed=3, dtype=torch.float64))
    assert len(rec.calls) >= 3, f"expected the three localconn:: primitives, saw {list(rec.calls)}"
    for name, (func, args, kwargs) in rec.calls.items():
        result = torch.library.opcheck(func, _fresh(args), _fresh(kwargs), raise_exception=False)
        failed = {k: v for k, v in result.items() if v != "SUCCESS"}
        assert not failed, f"opcheck of {name}: {failed}"


# --------------------------------------------------------------------------- #
# autocast
# --------------------------------------------------------------------------- #


def _bf16_round(t: torch.Tensor) -> torch.Tensor:
    return t.detach().bfloat16().float()


def test_autocast_functional_like_conv2d() -> None:
    """Under CPU bf16 autocast local_conn2d returns conv2d's dtype and the bf16 result."""
    x, w, b = randn(N, C, H, W, seed=1), randn(1, C, K, K, 1, 1, seed=2), randn(C, seed=3)
    k4 = w[0, :, :, :, 0, 0][:, None]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = localconn.local_conn2d(x, w, b, padding=1)
        y_conv = F.conv2d(x, k4, b, padding=1, groups=C)
    assert y_conv.dtype == torch.bfloat16
    assert y.dtype == y_conv.dtype
    expected = localconn.local_conn2d(_bf16_round(x), _bf16_round(w), _bf16_round(b), padding=1)
    assert_close(y, expected, torch.bfloat16, what="autocast local_conn2d")
    assert_close(y, y_conv, torch.bfloat16, what="autocast local_conn2d vs conv2d")


def test_autocast_keeps_float64_like_conv2d() -> None:
    """Autocast leaves float64 alone, as it does for conv2d."""
    x = randn(N, C, H, W, seed=1, dtype=torch.float64)
    w = randn(1, C, K, K, 1, 1, seed=2, dtype=torch.float64)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = localconn.local_conn2d(x, w, padding=1)
        y_conv = F.conv2d(x, w[0, :, :, :, 0, 0][:, None], padding=1, groups=C)
    assert y.dtype == y_conv.dtype == torch.float64, (y.dtype, y_conv.dtype)


def test_autocast_module() -> None:
    """Static and dynamic modules run in bf16 under autocast; grads stay float32."""
    m = randomize(LocalConn2d(C, K))
    conv = nn.Conv2d(C, C, K, padding=1, groups=C)
    conv.load_state_dict(m.state_dict())
    x = randn(N, C, H, W, seed=4)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = m(x)
        y_conv = conv(x)
    assert y.dtype == torch.bfloat16 == y_conv.dtype
    rounded = copy.deepcopy(m)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(_bf16_round(p))
    assert_close(y, rounded(_bf16_round(x)), torch.bfloat16, what="autocast module")
    assert_close(y, y_conv, torch.bfloat16, what="autocast module vs nn.Conv2d")
    y.float().square().sum().backward()
    assert m.weight.grad is not None and m.weight.grad.dtype == torch.float32
    assert torch.isfinite(m.weight.grad).all()

    dyn = randomize(LocalConn2d(C, K, dynamic=True, share="channel", groups=G, stride=2))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        yd = dyn(x)
    assert yd.dtype == torch.bfloat16 and torch.isfinite(yd.float()).all()
    yd.float().square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in dyn.parameters())


# --------------------------------------------------------------------------- #
# memory layouts
# --------------------------------------------------------------------------- #


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _is_cl(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("window", ["sliding", "neighborhood", "block"])
def test_channels_last_primitives(window: str) -> None:
    """channels_last in, channels_last out, same values, for the three primitives."""
    kw: dict[str, Any] = {"padding": 1} if window == "sliding" else {"window": window}
    x, w = randn(N, C, H, W, seed=1), randn(N, G, K, K, H, W, seed=2)
    y = localconn.local_conn2d(x, w, **kw)
    y_cl = localconn.local_conn2d(_cl(x), w, **kw)
    assert _is_cl(y_cl), f"conn output strides {y_cl.stride()}"
    assert_close(y_cl, y, what="channels_last conn")

    g = randn(N, C, H, W, seed=3)
    xt = localconn.local_conn2d_transpose(g, w, (H, W), **kw)
    xt_cl = localconn.local_conn2d_transpose(_cl(g), w, (H, W), **kw)
    assert _is_cl(xt_cl), f"conn_t output strides {xt_cl.stride()}"
    assert_close(xt_cl, xt, what="channels_last conn_t")

    shape = (N, G, K, K, H, W)
    gw = localconn.local_corr2d(g, x, shape, **kw)
    assert_close(localconn.local_corr2d(_cl(g), _cl(x), shape, **kw), gw, what="channels_last corr")
    assert_close(localconn.local_corr2d(_cl(g), x, shape, **kw), gw, what="mixed layout corr")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"dynamic": True, "share": "none", "stride": 2},
        {"share": "channel", "groups": G, "input_size": (H, W), "window": "neighborhood"},
    ],
    ids=["spatial", "dynamic-none-stride2", "channel-neighborhood"],
)
def test_channels_last_module(kwargs: dict[str, Any]) -> None:
    """The module keeps channels_last, with the same values and input gradient."""
    m = randomize(LocalConn2d(C, K, **kwargs))
    x = randn(N, C, H, W, seed=5)
    xa, xb = x.clone().requires_grad_(), _cl(x).requires_grad_()
    ya, yb = m(xa), m(xb)
    assert _is_cl(yb), f"module output strides {yb.stride()}"
    assert_close(yb, ya, what="channels_last module")
    gy = randn(*ya.shape, seed=6)
    ya.backward(gy)
    yb.backward(gy)
    assert_close(xb.grad, xa.grad, what="channels_last module input grad")


# --------------------------------------------------------------------------- #
# non-contiguous inputs and strided weights
# --------------------------------------------------------------------------- #


def _noncontig_inputs() -> Iterator[tuple[str, torch.Tensor]]:
    yield "sliced", randn(N, 2 * C, 2 * H, W + 3, seed=1)[:, ::2, ::2, 2 : W + 2]
    yield "transposed", randn(N, C, W, H, seed=2).transpose(2, 3)
    yield "batch-permuted", randn(C, N, H, W, seed=3).transpose(0, 1)
    yield "expanded", randn(1, C, H, W, seed=4).expand(N, -1, -1, -1)


def _strided_weights(ho: int, wo: int) -> Iterator[tuple[str, torch.Tensor]]:
    yield "attention-permuted", randn(N, G, ho, wo, K, K, seed=5).permute(0, 1, 4, 5, 2, 3)
    yield "expanded", randn(1, C, K, K, 1, 1, seed=6).expand(N, C, K, K, ho, wo)
    yield "channel-sliced", randn(1, 2 * C, K, K, ho, 1, seed=7)[:, 1::2]
    yield "kernel-transposed", randn(N, 1, K, K, ho, wo, seed=8).transpose(2, 3)


@pytest.mark.parametrize("window", ["sliding", "block"])
def test_noncontiguous_inputs_and_weights(window: str) -> None:
    """Views with arbitrary strides give the values (and grads) of contiguous copies."""
    kw: dict[str, Any] = {"stride": 2, "padding": 1} if window == "sliding" else {"window": window}
    ho, wo = ((H + 1) // 2, (W + 1) // 2) if window == "sliding" else (H, W)
    bias = randn(2 * C, seed=9)[::2]
    w0 = randn(1, G, K, K, ho, wo, seed=10)
    for name, x in _noncontig_inputs():
        assert not x.is_contiguous()
        y = localconn.local_conn2d(x, w0, bias, **kw)
        expected = localconn.local_conn2d(x.contiguous(), w0, bias.contiguous(), **kw)
        assert_close(y, expected, what=f"conn with {name} x")
        g = randn(N, C, ho, wo, seed=11).transpose(0, 1).contiguous().transpose(0, 1)
        assert_close(
            localconn.local_corr2d(g, x, (N, G, K, K, ho, wo), **kw),
            localconn.local_corr2d(g.contiguous(), x.contiguous(), (N, G, K, K, ho, wo), **kw),
            what=f"corr with {name} b",
        )
    x = randn(N, C, H, W, seed=12)
    g = randn(N, C, ho, wo, seed=13)
    g_nc = randn(N, C, wo, ho, seed=13).transpose(2, 3)
    for name, w in _strided_weights(ho, wo):
        assert not w.is_contiguous()
        assert_close(
            localconn.local_conn2d(x, w, **kw),
            localconn.local_conn2d(x, w.contiguous(), **kw),
            what=f"conn, {name} W",
        )
        assert_close(
            localconn.local_conn2d_transpose(g, w, (H, W), **kw),
            localconn.local_conn2d_transpose(g, w.contiguous(), (H, W), **kw),
            what=f"conn_t, {name} W",
        )
        assert_close(
            localconn.local_conn2d_transpose(g_nc, w, (H, W), **kw),
            localconn.local_conn2d_transpose(g_nc.contiguous(), w.contiguous(), (H, W), **kw),
            what=f"conn_t, transposed g, {name} W",
        )


def test_gradients_through_strided_weights() -> None:
    """Gradients reach the base of a permuted / expanded weight as for a plain one."""
    x = randn(N, C, H, W, seed=1).requires_grad_()
    gy = randn(N, C, H, W, seed=2)
    base = randn(1, C, K, K, 1, 1, seed=3).requires_grad_()
    plain = base.detach().clone().requires_grad_()
    localconn.local_conn2d(x, base.expand(N, C, K, K, H, W), padding=1).backward(gy)
    gx_expanded = x.grad.clone()
    x.grad = None
    localconn.local_conn2d(x, plain, padding=1).backward(gy)
    assert_close(base.grad, plain.grad, what="grad through expand", scale=10)
    assert_close(gx_expanded, x.grad, what="x grad with expanded weight")

    attn = randn(N, G, H, W, K, K, seed=4).requires_grad_()
    attn_c = attn.detach().permute(0, 1, 4, 5, 2, 3).contiguous().requires_grad_()
    localconn.local_conn2d(x, attn.permute(0, 1, 4, 5, 2, 3), window="neighborhood").backward(gy)
    localconn.local_conn2d(x, attn_c, window="neighborhood").backward(gy)
    assert_close(attn.grad.permute(0, 1, 4, 5, 2, 3), attn_c.grad, what="grad through permute")


# --------------------------------------------------------------------------- #
# double backward
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stride": 2, "dilation": (1, 2)},
        {"share": "none", "input_size": (3, 4), "window": "neighborhood"},
        {"share": "channel", "groups": 2, "input_size": (3, 4), "padding": (0, 2)},
    ],
    ids=["spatial-stride2", "none-neighborhood", "channel-padding"],
)
def test_double_backward_static_module(kwargs: dict[str, Any]) -> None:
    """gradcheck and gradgradcheck through a static LocalConn2d (x, weight, bias)."""
    m = randomize(LocalConn2d(2, K, **kwargs)).double()
    x = randn(1, 2, 3, 4, seed=1, dtype=torch.float64).requires_grad_()
    params = {k: v.detach().clone().requires_grad_() for k, v in m.named_parameters()}
    names = sorted(params)

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

    inputs = (x, *(params[k] for k in names))
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_double_backward_dynamic_module() -> None:
    """gradgradcheck wrt x of an eval-mode dynamic module; a train-mode gradient penalty."""
    m = (
        randomize(LocalConn2d(4, K, dynamic=True, share="channel", groups=2, window="neighborhood"))
        .double()
        .eval()
    )
    x = randn(1, 4, 4, 3, seed=2, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradgradcheck(m, (x,))

    m.train()
    x = randn(3, 4, 4, 3, seed=3, dtype=torch.float64).requires_grad_()
    (gx,) = torch.autograd.grad(m(x).square().sum(), x, create_graph=True)
    gx.square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.bias.grad.abs().sum() > 0


# --------------------------------------------------------------------------- #
# backends
# --------------------------------------------------------------------------- #


def _call(**kw: Any) -> torch.Tensor:
    return localconn.local_conn2d(
        randn(N, C, H, W, seed=1), randn(1, C, K, K, 1, 1, seed=2), padding=1, **kw
    )


def test_backends_report() -> None:
    """backends() names reference/triton/cuda; reference runs; unavailable ones say why."""
    report = localconn.backends()
    assert {"reference", "triton", "cuda"} <= set(report)
    assert report["reference"].available is True
    for name, b in report.items():
        assert isinstance(b.available, bool), name
        if b.available:
            assert b.reason is None, name
        else:
            assert isinstance(b.reason, str) and b.reason.strip(), f"{name}: no reason given"


def test_reference_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """backend=, use_backend() and LOCALCONN_BACKEND select reference with equal results."""
    monkeypatch.delenv("LOCALCONN_BACKEND", raising=False)
    y = _call()
    assert_close(_call(backend="reference"), y, what="backend='reference'")
    assert_close(_call(backend="auto"), y, what="backend='auto'")
    with localconn.use_backend("reference"):
        assert_close(_call(), y, what="use_backend('reference')")
    monkeypatch.setenv("LOCALCONN_BACKEND", "reference")
    assert_close(_call(), y, what="LOCALCONN_BACKEND=reference")
    m = randomize(LocalConn2d(C, K, backend="reference"))
    x = randn(N, C, H, W, seed=3)
    assert_close(m(x), randomize(LocalConn2d(C, K))(x), what="module backend='reference'")


@pytest.mark.parametrize("name", ["triton", "cuda"])
def test_forced_unavailable_backend_raises(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forcing a backend that cannot run on CPU tensors raises and says why, in every way."""
    monkeypatch.delenv("LOCALCONN_BACKEND", raising=False)
    reason = localconn.backends()[name].reason
    assert issubclass(localconn.BackendUnavailableError, RuntimeError)

    def check(fn: Callable[[], Any]) -> None:
        with pytest.raises(localconn.BackendUnavailableError) as info:
            fn()
        msg = str(info.value)
        assert name in msg, msg
        if reason:
            assert reason in msg, f"reason {reason!r} not in {msg!r}"

    check(lambda: _call(backend=name))
    check(
        lambda: localconn.local_conn2d_transpose(
            randn(N, C, H, W), randn(1, C, K, K, 1, 1), (H, W), padding=1, backend=name
        )
    )
    check(
        lambda: localconn.local_corr2d(
            randn(N, C, H, W),
            randn(N, C, H, W, seed=1),
            (1, C, K, K, 1, 1),
            padding=1,
            backend=name,
        )
    )
    with localconn.use_backend(name):
        check(_call)
    _call()  # the context manager restored the default
    check(lambda: LocalConn2d(C, K, backend=name)(randn(N, C, H, W)))
    monkeypatch.setenv("LOCALCONN_BACKEND", name)
    check(_call)


def test_backend_name_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown names: ValueError naming backend / LOCALCONN_BACKEND."""
    monkeypatch.setenv("LOCALCONN_BACKEND", "warp-drive")
    with pytest.raises(ValueError, match="LOCALCONN_BACKEND"):
        _call()
    monkeypatch.delenv("LOCALCONN_BACKEND")
    # raised at enter or at the call
    with pytest.raises(ValueError, match="backend"), localconn.use_backend("warp-drive"):
        _call()
    _call()


# --------------------------------------------------------------------------- #
# determinism
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_deterministic_gradients(kind: str) -> None:
    """With deterministic algorithms, two runs give bitwise identical gradients."""
    model = MODELS[kind]()
    x = randn(N, C, H, W, seed=1)
    runs = []
    with _deterministic():
        for _ in range(2):
            xr = x.clone().requires_grad_()
            y = model(xr)
            y.backward(randn(*y.shape, seed=2))
            runs.append((y.detach(), xr.grad, grads(model)))
            model.zero_grad(set_to_none=True)
    (y0, gx0, gp0), (y1, gx1, gp1) = runs
    assert torch.equal(y0, y1)
    assert torch.equal(gx0, gx1)
    for name in gp0:
        assert torch.equal(gp0[name], gp1[name]), f"{name} grad differs between runs"


def test_deterministic_primitive_gradients() -> None:
    """Gradients of the primitives (incl. a broadcast weight) are bitwise reproducible."""
    outs = []
    with _deterministic():
        for _ in range(2):
            x = randn(N, C, H, W, seed=1).requires_grad_()
            w = randn(1, G, K, K, 1, W, seed=2).requires_grad_()
            a = randn(N, C, H, W, seed=3).requires_grad_()
            y = localconn.local_conn2d(x, w, window="neighborhood", dilation=2)
            s = localconn.local_corr2d(a, y, (N, G, K, K, H, W), window="neighborhood")
            z = localconn.local_conn2d_transpose(y, s, (H, W), window="neighborhood")
            z.backward(randn(N, C, H, W, seed=4))
            outs.append((x.grad, w.grad, a.grad))
    for first, second in zip(*outs):
        assert torch.equal(first, second)
