"""The fused neighborhood-attention kernel (Triton) against the float64 oracle.

Runs compiled on a GPU, else through Triton's CPU interpreter (the kernels
were defined for it by conftest.py; ``TRITON_INTERPRET=1`` is set around each
test). Every output the kernel writes starts as NaN, sizes leave partial query
tiles and dilation groups of unequal length, head dims are not powers of two.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Optional

import pytest
import torch
from test_neighborhood import oracle, randn
from tolerances import assert_close
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import localconn
from localconn import LocalAttention2d, na2d

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                reason="Triton is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
Pair = tuple[int, int]


@pytest.fixture(autouse=True)
def interpreter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Triton's interpreter on CPU; every ``empty`` of the launch module NaN-filled."""
    if DEVICE == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    from localconn.triton_kernels import launch

    real = launch.empty

    def poisoned(*args, **kwargs) -> torch.Tensor:
        return real(*args, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(launch, "empty", poisoned)
    yield


def count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """A list that grows by one at each call of ``module.name`` (patched for the test)."""
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.fixture
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fused forward kernel's launches."""
    from localconn.triton_kernels import backend as triton_backend

    return count_calls(monkeypatch, triton_backend, "neighborhood_attention")


@pytest.fixture
def fused_backward_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fused backward kernels' launches."""
    from localconn.triton_kernels import backend as triton_backend

    return count_calls(monkeypatch, triton_backend, "neighborhood_attention_backward")


CASES = [  # B, (H, W), heads, D, Dv, kernel, dilation, causal, rpb, dtype
    (2, (13, 19), 2, 24, 40, (7, 7), (1, 1), False, True, torch.float32),
    (1, (13, 19), 1, 16, 16, (3, 5), (2, 3), False, True, torch.float16),
    (1, (12, 9), 3, 8, 8, (4, 3), (1, 1), False, False, torch.bfloat16),  # even kernel, D < 16
    (1, (17, 10), 1, 32, 16, (5, 3), (1, 2), True, True, torch.float32),
    (2, (9, 9), 1, 16, 24, (3, 3), (3, 1), True, False, torch.float16),
    (1, (8, 8), 1, 128, 128, (7, 5), (1, 1), False, True, torch.float32),  # the largest head
]


def _inputs(B: int, size: Pair, heads: int, D: int, Dv: int, kernel: Pair, rpb: bool,
            dtype: torch.dtype, grad: bool = False) -> tuple[torch.Tensor, ...]:
    q, k = (randn(B, *size, heads, D, seed=s).to(DEVICE, dtype) for s in (1, 2))
    v = randn(B, *size, heads, Dv, seed=3).to(DEVICE, dtype)
    bias = randn(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1, seed=4).to(DEVICE, dtype) \
        if rpb else None
    if grad:
        for t in (q, k, v, bias):
            if t is not None:
                t.requires_grad_()
    return q, k, v, bias


def _oracle(q, k, v, bias, kernel, dilation, causal, scale: Optional[float] = None):
    def wide(t):
        return None if t is None else t.detach().cpu().double().requires_grad_(t.requires_grad)

    args = [wide(t) for t in (q, k, v, bias)]
    return oracle(args[0], args[1], args[2], kernel, dilation, causal, args[3], scale)[0], args


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}k{c[5]}d{c[6]}c{int(c[7])}{c[9]}")
def test_fused_forward_matches_the_oracle(case: tuple, fused_calls: list[int]) -> None:
    B, size, heads, D, Dv, kernel, dilation, causal, rpb, dtype = case
    q, k, v, bias = _inputs(B, size, heads, D, Dv, kernel, rpb, dtype)
    out = na2d(q, k, v, kernel, dilation, is_causal=causal, rpb=bias, backend="triton",
               fused=True)
    assert fused_calls, "the fused kernel did not run"
    want, _ = _oracle(q, k, v, bias, kernel, dilation, causal)
    assert out.dtype == dtype and out.shape == (B, *size, heads, Dv)
    # 16 bits: exact products and float32 sums, but the probabilities are rounded to the
    # dtype before their product with v (as in flash-attention): a few ulps more
    assert_close(out, want, dtype=dtype, what="fused na2d", scale=1.0 if dtype == torch.float32
                 else 4.0)


GRAD_CASES = [  # B, (H, W), heads, D, Dv, kernel, dilation, causal, rpb, dtype
    (2, (11, 13), 2, 16, 8, (3, 5), (2, 1), False, True, torch.float32),
    (2, (11, 13), 2, 16, 8, (3, 5), (2, 1), True, True, torch.float32),
    (1, (13, 19), 1, 24, 40, (7, 7), (1, 1), False, True, torch.float32),
    (1, (10, 12), 2, 16, 16, (4, 5), (1, 2), False, False, torch.float32),
    (1, (13, 12), 1, 16, 16, (9, 9), (1, 1), False, True, torch.float32),  # a key tile at row K - 1: seen from query 0
    (1, (12, 9), 2, 16, 16, (5, 3), (1, 1), False, True, torch.float16),
    (1, (12, 9), 1, 16, 16, (3, 3), (2, 2), True, True, torch.bfloat16),
]


@pytest.mark.parametrize("case", GRAD_CASES,
                         ids=lambda c: f"{c[1]}k{c[5]}d{c[6]}c{int(c[7])}{c[9]}")
def test_fused_gradients_match_the_oracle(case: tuple, fused_calls: list[int],
                                          fused_backward_calls: list[int]) -> None:
    """dq, dk, dv and drpb of the fused backward kernels against the oracle's autograd."""
    B, size, heads, D, Dv, kernel, dilation, causal, rpb, dtype = case
    q, k, v, bias = _inputs(B, size, heads, D, Dv, kernel, rpb, dtype, grad=True)
    out = na2d(q, k, v, kernel, dilation, is_causal=causal, rpb=bias, backend="triton",
               fused=True)
    want, leaves = _oracle(q, k, v, bias, kernel, dilation, causal)
    g = randn(*out.shape, seed=9)
    inputs = [t for t in (q, k, v, bias) if t is not None]
    got = torch.autograd.grad(out, inputs, g.to(out))
    ref = torch.autograd.grad(want, [t for t in leaves if t is not None], g)
    assert fused_calls and fused_backward_calls, "the fused kernels did not run"
    # 16 bits: p and ds are rounded to the dtype before their products (as flash-attention);
    # drpb sums up to H * W * B terms of ds
    widen = 1.0 if dtype == torch.float32 else 8.0
    for name, a, e in zip(["q", "k", "v", "rpb"], got, ref):
        assert_close(a, e, dtype=dtype, what=f"grad {name}",
                     scale=widen * (4.0 if name == "rpb" else 1.0))


def test_auto_picks_fused_for_16_bits_and_not_in_deterministic_mode(
        fused_calls: list[int], fused_backward_calls: list[int]) -> None:
    """"auto" runs the fused kernels for 16-bit inputs, not for float32 (predicted slower),
    and not in deterministic mode when rpb needs a gradient (summed by atomics): the
    primitives then, right and bitwise repeatable."""
    kernel = (3, 3)
    q, k, v, bias = _inputs(1, (9, 10), 2, 16, 16, kernel, True, torch.float16, grad=True)
    na2d(q, k, v, kernel, rpb=bias, backend="triton").sum().backward()
    assert len(fused_calls) == 1 and len(fused_backward_calls) == 1
    q32 = q.detach().float()
    na2d(q32, q32, q32, kernel, backend="triton")
    assert len(fused_calls) == 1
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            out = na2d(q, k, v, kernel, rpb=bias, backend="triton")
            runs.append(torch.autograd.grad(out.float().square().sum(), (q, k, v, bias)))
        with pytest.raises(ValueError, match="deterministic"):
            na2d(q, k, v, kernel, rpb=bias, backend="triton", fused=True)
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(fused_calls) == 1 and len(fused_backward_calls) == 1
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    want, leaves = _oracle(q, k, v, bias, kernel, (1, 1), False)
    for name, a, e in zip(["q", "k", "v", "rpb"], runs[0],
                          torch.autograd.grad(want.square().sum(), leaves)):
        assert_close(a, e, dtype=torch.float16, what=f"grad {name}", scale=8.0)


class _Largest(TorchDispatchMode):
    """The largest tensor any aten op returns while active, in bytes (Triton's interpreter
    copies its arguments' storages as bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def test_fused_forward_never_holds_the_map() -> None:
    """Every tensor the fused forward allocates is at most the size of q, k or v (bytes); the unfused
    path allocates the ``(B, heads, Kh, Kw, H, W)`` map (which the measurement sees)."""
    kernel = (7, 7)
    q, k, v, bias = _inputs(1, (14, 14), 2, 16, 16, kernel, True, torch.float32)
    map_bytes = 2 * 49 * 14 * 14 * 4
    sizes = {}
    for fused in (True, False):
        with _Largest() as mode:
            na2d(q, k, v, kernel, rpb=bias, backend="triton", fused=fused)
        sizes[fused] = mode.largest
    assert sizes[False] >= map_bytes
    assert sizes[True] <= q.numel() * 4 < map_bytes


def test_fused_backward_never_holds_the_map(fused_backward_calls: list[int]) -> None:
    """The fused backward's allocations are at most the size of q, k or v (bytes)."""
    kernel = (7, 7)
    q, k, v, bias = _inputs(1, (14, 14), 2, 16, 16, kernel, True, torch.float32, grad=True)
    out = na2d(q, k, v, kernel, rpb=bias, backend="triton", fused=True)
    g = torch.ones_like(out)
    with _Largest() as mode:
        torch.autograd.grad(out, (q, k, v, bias), g)
    assert fused_backward_calls
    assert mode.largest <= q.numel() * 4 < 2 * 49 * 14 * 14 * 4


MODULE_CASES = [  # window, kernel, dilation, shift, size
    ("neighborhood", (5, 3), (1, 2), 0, (10, 13)),
    ("block", (4, 3), (1, 1), (2, 1), (12, 9)),  # Swin's shifted windows
    ("block", (3, 3), (1, 1), 0, (9, 9)),
    ("sliding", (4, 3), (2, 1), 0, (11, 9)),  # even kernel: K // 2 before, K // 2 - 1 after
]


@pytest.mark.parametrize("window, kernel, dilation, shift, size", MODULE_CASES)
def test_module_windows_fused_match_unfused(window: str, kernel: Pair, dilation: Pair,
                                            shift, size: Pair, fused_calls: list[int],
                                            fused_backward_calls: list[int]) -> None:
    """LocalAttention2d runs every window fused and agrees with fused=False, output and every
    parameter's gradient; with attention dropout in training "auto" runs unfused."""
    torch.manual_seed(0)
    m = LocalAttention2d(16, 2, kernel, window=window, dilation=dilation, shift=shift,
                         backend="triton").to(DEVICE)
    with torch.no_grad():
        m.relative_position_bias_table.normal_()
    x = randn(2, 16, *size, seed=1, dtype=torch.float32).to(DEVICE)
    results = []
    for fused in (True, False):
        m.fused = fused
        y = m(x)
        results.append((y, *torch.autograd.grad(y.square().sum(), list(m.parameters()))))
    assert len(fused_calls) == 1 and len(fused_backward_calls) == 1
    names = ["out"] + [n for n, _ in m.named_parameters()]
    for name, a, e in zip(names, *results):
        assert_close(a, e, what=f"{window} {name}", scale=4.0)
    m.fused, m.attn_drop.p = None, 0.1
    m.train()(x)
    assert len(fused_calls) == 1


def test_fused_true_says_why_it_cannot_run() -> None:
    q = randn(1, 9, 9, 2, 8)
    for kwargs, word in (({"backend": "reference"}, "backend"), ({"backend": "triton"}, "float64")):
        with pytest.raises(ValueError, match=word):
            na2d(q, q, q, 3, fused=True, **kwargs)
    with pytest.raises(ValueError, match="fused"):
        na2d(q, q, q, 3, fused="yes")
    x = randn(1, 8, 9, 9, dtype=torch.float32)
    m = LocalAttention2d(8, 2, 3, attn_drop=0.1, fused=True, backend="triton").train()
    with pytest.raises(ValueError, match="dropout"):
        m(x)
    with localconn.use_backend("reference"):
        assert LocalAttention2d(8, 2, 3, fused=False)(x).shape == x.shape


def test_fused_ops_compile_and_count(fused_calls: list[int],
                                     fused_backward_calls: list[int]) -> None:
    """The fused ops are custom ops: ``torch.compile(fullgraph=True)`` traces them (forward and
    backward) with the eager result, and FlopCounterMode counts them as the unfused path."""
    B, size, heads, D, kernel = 2, (9, 10), 3, 16, (3, 5)
    q, k, v, bias = _inputs(B, size, heads, D, D, kernel, True, torch.float32, grad=True)

    def attend(q, k, v, bias):
        return na2d(q, k, v, kernel, rpb=bias, backend="triton", fused=True)

    compiled = torch.compile(attend, backend="aot_eager", fullgraph=True)
    results = []
    for fn in (attend, compiled):
        out = fn(q, k, v, bias)
        results.append((out, *torch.autograd.grad(out.square().sum(), (q, k, v, bias))))
    for name, a, e in zip(["out", "q", "k", "v", "rpb"], *results):
        assert_close(a, e, what=f"compiled {name}")
    assert len(fused_calls) == 2 and len(fused_backward_calls) == 2
    with FlopCounterMode(display=False) as counter:
        attend(q, k, v, bias).sum().backward()
    forward = 2 * B * size[0] * size[1] * kernel[0] * kernel[1] * heads * (D + D)
    ops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert ops == {"localconn.window_attention": forward,
                   "localconn.window_attention_backward": 2 * forward}
