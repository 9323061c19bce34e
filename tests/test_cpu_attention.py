"""The CPU's fused local attention (``csrc/cpu/attention.h``) against the float64 oracle.

The same cases as the Triton kernel's (``test_fused_attention.py``: every window,
dilation, causal, even kernels, head dims that are not whole vectors, partial dilation
groups), plus the module's windows (Swin's shifted blocks, the sliding window's zero
padding) against the unfused path in float64, both layouts, every dtype the kernel takes.
Every output the kernel writes starts as NaN (``cpu_attention.empty`` is patched).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fused_attention import CASES, GRAD_CASES, MODULE_CASES, _Largest, count_calls
from test_neighborhood import oracle, randn
from tolerances import assert_close
from torch.utils.flop_counter import FlopCounterMode

import localconn
from localconn import LocalAttention2d, cpu_attention, cpu_backend, na2d
from localconn.window_attention import window_attention

pytestmark = pytest.mark.skipif(cpu_backend.available() is not None,
                                reason=f"{cpu_backend.available()}")
Pair = tuple[int, int]


@pytest.fixture(autouse=True)
def poisoned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``empty`` of cpu_attention NaN-filled."""
    real = cpu_attention.empty
    monkeypatch.setattr(cpu_attention, "empty",
                        lambda *a, **kw: real(*a, **kw).fill_(float("nan")))
    yield


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Counts the CPU kernel's forward and backward calls."""
    return (count_calls(monkeypatch, cpu_attention, "forward"),
            count_calls(monkeypatch, cpu_attention, "backward"))


def _inputs(B: int, size: Pair, heads: int, D: int, Dv: int, kernel: Pair, rpb: bool,
            dtype: torch.dtype, grad: bool = False) -> list[Optional[torch.Tensor]]:
    """Heads-last q, k, v and the bias (or None)."""
    ts = [randn(B, *size, heads, D, seed=1), randn(B, *size, heads, D, seed=2),
          randn(B, *size, heads, Dv, seed=3),
          randn(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1, seed=4) if rpb else None]
    return [None if t is None else t.to(dtype).requires_grad_(grad) for t in ts]


def _wide(ts: list[Optional[torch.Tensor]]) -> list[Optional[torch.Tensor]]:
    return [None if t is None else t.detach().double().requires_grad_(t.requires_grad)
            for t in ts]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}k{c[5]}d{c[6]}c{int(c[7])}{c[9]}")
def test_forward_matches_the_oracle(case: tuple, calls: tuple[list[int], list[int]]) -> None:
    B, size, heads, D, Dv, kernel, dilation, causal, rpb, dtype = case
    q, k, v, bias = _inputs(B, size, heads, D, Dv, kernel, rpb, dtype)
    out = na2d(q, k, v, kernel, dilation, is_causal=causal, rpb=bias, backend="cpu", fused=True)
    assert calls[0], "the CPU's fused kernel did not run"
    want = oracle(*_wide([q, k, v]), kernel, dilation, causal, *_wide([bias]))[0]
    assert out.dtype == dtype and out.shape == (B, *size, heads, Dv)
    assert_close(out, want, dtype=dtype, what="cpu fused na2d")


@pytest.mark.parametrize("case", GRAD_CASES,
                         ids=lambda c: f"{c[1]}k{c[5]}d{c[6]}c{int(c[7])}{c[9]}")
def test_gradients_match_the_oracle(case: tuple, calls: tuple[list[int], list[int]]) -> None:
    """dq, dk, dv and drpb of the CPU's fused backward against the oracle's autograd."""
    B, size, heads, D, Dv, kernel, dilation, causal, rpb, dtype = case
    leaves = _inputs(B, size, heads, D, Dv, kernel, rpb, dtype, grad=True)
    out = na2d(*leaves[:3], kernel, dilation, is_causal=causal, rpb=leaves[3], backend="cpu",
               fused=True)
    wide = _wide(leaves)
    want = oracle(*wide[:3], kernel, dilation, causal, wide[3])[0]
    g = randn(*out.shape, seed=9)
    got = torch.autograd.grad(out, [t for t in leaves if t is not None], g.to(out))
    ref = torch.autograd.grad(want, [t for t in wide if t is not None], g)
    assert calls[0] and calls[1], "the CPU's fused kernels did not run"
    for name, a, e in zip(["q", "k", "v", "rpb"], got, ref):  # drpb: sums of B * H * W terms
        assert_close(a, e, dtype=dtype, what=f"grad {name}", scale=4.0 if name == "rpb" else 1.0)


def _attend(ts: list[Optional[torch.Tensor]], heads: int, kernel: Pair, dilation: Pair,
            window: str, shift: Pair, fused: bool) -> torch.Tensor:
    return window_attention(*ts[:3], heads, kernel, dilation, window=window, shift=shift,
                            rpb=ts[3], scale=0.4, fused=fused,
                            backend="cpu" if fused else "reference")


WINDOW_CASES = [  # window, kernel, dilation, shift, size, heads, D, Dv
    *((w, k, d, s, size, 2, 12, 20) for w, k, d, s, size in MODULE_CASES),
    ("causal", (3, 4), (2, 1), (0, 0), (10, 11), 3, 8, 8),
    ("neighborhood", (7, 7), (1, 1), (0, 0), (14, 15), 3, 32, 32),  # DWNet's heads
    ("neighborhood", (3, 3), (1, 1), (0, 0), (5, 6), 1, 136, 17),  # > 8 vectors: any D
    ("block", (7, 7), (1, 1), (3, 3), (14, 14), 3, 32, 32),  # Swin-T's shifted windows
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", WINDOW_CASES, ids=lambda c: f"{c[0]}{c[1]}d{c[2]}s{c[3]}")
def test_windows_layouts_dtypes(case: tuple, cl: bool, dtype: torch.dtype,
                                calls: tuple[list[int], list[int]]) -> None:
    """Every window of ``window_attention`` (Swin's shifted blocks, sliding, causal) in both
    layouts and every dtype the kernel takes, output and every gradient, against the unfused
    path in float64; results in the inputs' dtypes and layouts."""
    window, kernel, dilation, shift, size, heads, D, Dv = case
    shift = (shift, shift) if isinstance(shift, int) else shift
    fmt = torch.channels_last if cl else torch.contiguous_format
    ts = [randn(2, heads * D, *size, seed=1), randn(2, heads * D, *size, seed=2),
          randn(2, heads * Dv, *size, seed=3),
          randn(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1, seed=4)]
    leaves = [t.to(dtype).contiguous(memory_format=fmt if t.dim() == 4 else
                                     torch.contiguous_format).requires_grad_() for t in ts]
    out = _attend(leaves, heads, kernel, dilation, window, shift, fused=True)
    wide = _wide(leaves)
    want = _attend(wide, heads, kernel, dilation, window, shift, fused=False)
    g = randn(*out.shape, seed=9)
    got = torch.autograd.grad(out, leaves, g.to(out))
    ref = torch.autograd.grad(want, wide, g)
    assert len(calls[0]) == 1 and len(calls[1]) == 1
    assert out.dtype == dtype and out.is_contiguous(memory_format=fmt)
    assert_close(out, want, dtype=dtype, what=f"{window} out")
    for name, a, e, t in zip(["q", "k", "v", "rpb"], got, ref, leaves):
        assert a.dtype == dtype and a.is_contiguous(memory_format=torch.channels_last if cl and
                                                    t.dim() == 4 else torch.contiguous_format)
        assert_close(a, e, dtype=dtype, what=f"{window} grad {name}",
                     scale=8.0 if name == "rpb" else 2.0)


@st.composite
def _configs(draw: st.DrawFn) -> tuple:
    """A valid random call: window, kernel, dilation, shift, size, heads, D, Dv, rpb, cl."""
    window = draw(st.sampled_from(["neighborhood", "causal", "sliding", "block"]))
    kernel = tuple(draw(st.integers(1, 5)) for _ in range(2))
    if window == "block":
        dilation = (1, 1)
        shift = tuple(draw(st.integers(0, K - 1)) for K in kernel)
        size = tuple(K * draw(st.integers(1, 3)) for K in kernel)
    else:
        dilation = tuple(draw(st.integers(1, 3)) for _ in range(2))
        shift = (0, 0)
        low = [K * d if window == "neighborhood" else 1 for K, d in zip(kernel, dilation)]
        size = tuple(draw(st.integers(lo, lo + 8)) for lo in low)
    return (window, kernel, dilation, shift, size, draw(st.integers(1, 3)),
            draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.booleans()),
            draw(st.booleans()))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cfg=_configs())
def test_random_calls(cfg: tuple) -> None:
    """Random windows, kernels (even, 1-wide), dilations, shifts, sizes and head dims: the
    output and every gradient against the unfused path in float64."""
    window, kernel, dilation, shift, size, heads, D, Dv, rpb, cl = cfg
    fmt = torch.channels_last if cl else torch.contiguous_format
    ts = [randn(2, heads * D, *size, seed=1), randn(2, heads * D, *size, seed=2),
          randn(2, heads * Dv, *size, seed=3),
          randn(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1, seed=4) if rpb else None]
    leaves = [None if t is None else
              t.float().contiguous(memory_format=fmt if t.dim() == 4 else
                                   torch.contiguous_format).requires_grad_() for t in ts]
    out = _attend(leaves, heads, kernel, dilation, window, shift, fused=True)
    wide = _wide(leaves)
    want = _attend(wide, heads, kernel, dilation, window, shift, fused=False)
    g = randn(*out.shape, seed=9)
    got = torch.autograd.grad(out, [t for t in leaves if t is not None], g.float())
    ref = torch.autograd.grad(want, [t for t in wide if t is not None], g)
    assert_close(out, want, what=f"out {cfg}")
    for name, a, e in zip(["q", "k", "v", "rpb"], got, ref):
        assert_close(a, e, what=f"grad {name} {cfg}", scale=4.0 if name == "rpb" else 1.0)


@pytest.mark.parametrize("fused", [True, False])
def test_window_larger_than_the_image_is_a_value_error(fused: bool) -> None:
    """A dilated neighborhood larger than the image: ValueError naming the size, on the
    fused path too (its kernel is never reached)."""
    q = randn(1, 10, 13, 2, 8, dtype=torch.float32)
    with pytest.raises(ValueError, match="kernel \\* dilation"):
        na2d(q, q, q, 3, 4, backend="cpu", fused=fused)


def test_empty_batch() -> None:
    leaves = _inputs(0, (6, 7), 2, 8, 8, (3, 3), True, torch.float32, grad=True)
    out = na2d(*leaves[:3], (3, 3), rpb=leaves[3], backend="cpu", fused=True)
    grads = torch.autograd.grad(out.sum(), leaves)
    assert out.shape == (0, 6, 7, 2, 8) and grads[3].shape == leaves[3].shape
    assert torch.equal(grads[3], torch.zeros_like(grads[3]))


def test_module_runs_fused_on_the_cpu(calls: tuple[list[int], list[int]]) -> None:
    """``LocalAttention2d`` on CPU tensors runs the CPU's fused kernel by default ("auto"),
    with the result and gradients of ``fused=False``; not with attention dropout in
    training, nor in float64, nor on the reference backend."""
    torch.manual_seed(0)
    m = LocalAttention2d(24, 3, (5, 5), window="block", shift=2)
    with torch.no_grad():
        m.relative_position_bias_table.normal_()
    x = randn(2, 24, 10, 15, seed=1, dtype=torch.float32)
    results = []
    for fused in ("auto", False):
        m.fused = None if fused == "auto" else fused
        y = m(x)
        results.append((y, *torch.autograd.grad(y.square().sum(), list(m.parameters()))))
    assert len(calls[0]) == 1 and len(calls[1]) == 1
    for name, a, e in zip(["out"] + [n for n, _ in m.named_parameters()], *results):
        assert_close(a, e, what=name, scale=4.0)
    m.fused, m.attn_drop.p = None, 0.1
    m.train()(x)
    m.attn_drop.p = 0.0
    m.double()(x.double())
    with localconn.use_backend("reference"):
        m.float()(x)
    assert len(calls[0]) == 1


def test_reasons_it_does_not_run() -> None:
    q = randn(1, 9, 9, 2, 8, dtype=torch.float32)
    for kwargs, word in (({"backend": "reference"}, "backend"),
                         ({"backend": "cpu", "dtype": torch.float64}, "float64")):
        t = q.to(kwargs.pop("dtype", q.dtype))
        with pytest.raises(ValueError, match=word):
            na2d(t, t, t, 3, fused=True, **kwargs)
    with localconn.use_backend("reference"), pytest.raises(ValueError, match="reference"):
        na2d(q, q, q, 3, fused=True)


def test_deterministic_across_thread_counts() -> None:
    """Forward and backward bitwise equal on one and on two threads, and run to run."""
    leaves = _inputs(2, (11, 13), 3, 16, 24, (5, 5), True, torch.float32, grad=True)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 2):
            torch.set_num_threads(n)
            out = na2d(*leaves[:3], (5, 5), rpb=leaves[3], backend="cpu", fused=True)
            runs.append((out, *torch.autograd.grad(out.square().sum(), leaves)))
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_nan_and_inf_reach_exactly_the_windows_that_hold_them() -> None:
    """A NaN key and an infinite value make NaN exactly where the unfused path does."""
    q, k, v, _ = _inputs(1, (9, 11), 2, 8, 8, (3, 3), False, torch.float32)
    k[0, 2, 3, 0, 1] = float("nan")
    v[0, 7, 9, 1, 4] = float("inf")
    fused = na2d(q, k, v, (3, 3), backend="cpu", fused=True)
    unfused = na2d(q, k, v, (3, 3), backend="reference", fused=False)
    assert fused.isnan().any() and not fused.isnan().all()
    assert torch.equal(fused.isnan(), unfused.isnan())
    assert_close(fused, unfused, what="nan/inf")


def test_never_holds_the_map() -> None:
    """The forward's and the backward's largest tensors are the size of q, k or v (float32
    copies included); the unfused path's is the ``(B, heads, Kh, Kw, H, W)`` map."""
    kernel = (7, 7)
    q, k, v, bias = _inputs(1, (14, 14), 2, 16, 16, kernel, True, torch.float32, grad=True)
    map_bytes = 2 * 49 * 14 * 14 * 4
    sizes, outs = {}, {}
    for fused in (True, False):
        with _Largest() as mode:
            outs[fused] = na2d(q, k, v, kernel, rpb=bias,
                               backend="cpu" if fused else "reference", fused=fused)
        sizes[fused] = mode.largest
    with _Largest() as mode:
        torch.autograd.grad(outs[True], (q, k, v, bias), torch.ones_like(outs[True]))
    assert sizes[False] >= map_bytes
    assert max(sizes[True], mode.largest) <= q.numel() * 4 < map_bytes


def test_compiles_and_counts(calls: tuple[list[int], list[int]]) -> None:
    """``torch.compile(fullgraph=True)`` traces the CPU's fused op (forward and backward)
    with the eager result; FlopCounterMode counts it."""
    kernel = (3, 5)
    leaves = _inputs(2, (9, 10), 3, 16, 16, kernel, True, torch.float32, grad=True)

    def attend(q, k, v, bias):
        return na2d(q, k, v, kernel, rpb=bias, backend="cpu", fused=True)

    results = []
    for fn in (attend, torch.compile(attend, backend="aot_eager", fullgraph=True)):
        out = fn(*leaves)
        results.append((out, *torch.autograd.grad(out.square().sum(), leaves)))
    for name, a, e in zip(["out", "q", "k", "v", "rpb"], *results):
        assert_close(a, e, what=f"compiled {name}")
    assert len(calls[0]) == 2 and len(calls[1]) == 2
    with FlopCounterMode(display=False) as counter:
        attend(*leaves).sum().backward()
    forward = 2 * 2 * 9 * 10 * 15 * 3 * (16 + 16)
    ops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert ops == {"localconn.window_attention": forward,
                   "localconn.window_attention_backward": 2 * forward}


def test_the_binding_checks_its_arguments() -> None:
    """The raw op rejects what its callers never pass (a clear error, no crash)."""
    cpu_backend.extension()
    x = torch.randn(1, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    out, lse = torch.empty_like(x), torch.empty(1, 2, 5, 5)
    meta = [1, 5, 5, 2, 2, 2, 3, 3, 1, 1, 0, 0, 0]
    op = torch.ops.localconn_cpu.attention
    op(x, x, x, None, out, lse, meta, 1.0)
    for bad, word in ((x.contiguous(), "channels_last"), (x.double(), "float32"),
                      (x[:, :2], "size")):
        with pytest.raises(RuntimeError, match=word):
            op(bad, x, x, None, out, lse, meta, 1.0)
    with pytest.raises(RuntimeError, match="larger than a dilation group"):
        op(x, x, x, None, out, lse, [1, 5, 5, 2, 2, 2, 3, 3, 2, 1, 0, 0, 0], 1.0)
    with pytest.raises(RuntimeError, match="entries"):
        op(x, x, x, None, out, lse, meta[:-1], 1.0)


def test_any_strides() -> None:
    """Inputs of every layout reach the kernel right: NCHW channel slices (the module's
    q, k, v), channels_last slices, transposed and strided views; outputs in the inputs'
    layouts."""
    x = randn(2, 3 * 16, 9, 11, seed=1, dtype=torch.float32)
    views = {
        "nchw slices": x.chunk(3, dim=1),
        "channels_last slices": x.contiguous(memory_format=torch.channels_last).chunk(3, dim=1),
        "transposed": tuple(t.transpose(2, 3).contiguous().transpose(2, 3)
                            for t in x.chunk(3, dim=1)),
        "every other row": tuple(t for t in randn(2, 48, 18, 11, seed=2).float()[:, :, ::2]
                                 .chunk(3, dim=1)),
    }
    for name, (q, k, v) in views.items():
        out = window_attention(q, k, v, 2, (3, 5), (1, 1), scale=0.3, fused=True, backend="cpu")
        want = window_attention(*(t.double() for t in (q, k, v)), 2, (3, 5), (1, 1), scale=0.3,
                                fused=False, backend="reference")
        assert_close(out, want, what=name)
