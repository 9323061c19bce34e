"""``localconn.na2d`` / ``na2d_qk`` / ``na2d_av`` (NATTEN's API) against a naive float64 oracle.

The oracle shares nothing with the package: it gathers each query's keys with
index tensors built here by loops from NATTEN's definitions (the window of
``K`` keys of the query's dilation group centred on it and shifted inside the
image; a causal window of the ``K`` keys up to the query), adds NATTEN's
``rpb[h, dy + Kh - 1, dx + Kw - 1]`` with the true offsets, and runs a masked
softmax and a weighted sum in float64 on heads-last tensors. Gradients are
compared with the oracle's autograd.
"""

from __future__ import annotations

import doctest
import importlib.util
import math
from collections.abc import Iterator
from typing import Optional

import pytest
import torch
from backend_checks import DEPTHWISE_ONLY
from random_data import randn as _randn
from tolerances import assert_close
from torch.utils.flop_counter import FlopCounterMode

import localconn
import localconn.neighborhood
import localconn.window_attention
from localconn import LocalAttention2d, na2d, na2d_av, na2d_qk

Pair = tuple[int, int]


@pytest.fixture(autouse=True)
def reference_backend() -> Iterator[None]:
    """The math runs on the reference backend (``test_every_backend`` forces the others)."""
    with localconn.use_backend("reference"):
        yield


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return _randn(*shape, seed=seed, dtype=dtype)


# --------------------------------------------------------------------------- #
# The oracle
# --------------------------------------------------------------------------- #


def axis_keys(L: int, K: int, d: int, causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L, K)`` key (clipped into the image), in-image flag, and ``(key - query) / d``."""
    keys = torch.zeros(L, K, dtype=torch.long)
    valid = torch.zeros(L, K, dtype=torch.bool)
    offset = torch.zeros(L, K, dtype=torch.long)
    for o in range(L):
        group = list(range(o % d, L, d))  # the query's dilation group
        j = group.index(o)
        if causal:
            first = j - (K - 1)  # may be negative: those taps read outside the image
        else:
            first = min(max(j - K // 2, 0), len(group) - K)
        for k in range(K):
            g = first + k
            key = o + (g - j) * d
            valid[o, k] = 0 <= key < L
            keys[o, k] = key if valid[o, k] else 0
            offset[o, k] = g - j
    return keys, valid, offset


def oracle(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Pair, dilation: Pair,
           causal: bool = False, rpb: Optional[torch.Tensor] = None,
           scale: Optional[float] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Heads-last ``(B, H, W, heads, D)`` -> (output, logits ``(B, H, W, heads, Kh, Kw)``)."""
    B, H, W, heads, D = q.shape
    kh_keys, kh_ok, kh_off = axis_keys(H, kernel[0], dilation[0], causal)
    kw_keys, kw_ok, kw_off = axis_keys(W, kernel[1], dilation[1], causal)
    rows = kh_keys[:, None, :, None]  # (H, 1, Kh, 1)
    cols = kw_keys[None, :, None, :]  # (1, W, 1, Kw)
    kg = k[:, rows, cols]  # (B, H, W, Kh, Kw, heads, D)
    vg = v[:, rows, cols]
    scale = D**-0.5 if scale is None else scale
    logits = torch.einsum("bywhd,bywijhd->bywhij", q, kg) * scale
    if rpb is not None:
        dy = (kh_off + kernel[0] - 1)[:, None, None, :, None]  # (H, 1, 1, Kh, 1)
        dx = (kw_off + kernel[1] - 1)[None, :, None, None, :]  # (1, W, 1, 1, Kw)
        hh = torch.arange(heads)[None, None, :, None, None]
        logits = logits + rpb[hh, dy, dx]  # (H, W, heads, Kh, Kw)
    ok = kh_ok[:, None, None, :, None] & kw_ok[None, :, None, None, :]
    logits = logits.masked_fill(~ok, float("-inf"))
    attn = logits.flatten(-2).softmax(-1).unflatten(-1, kernel)
    out = torch.einsum("bywhij,bywijhd->bywhd", attn, vg)
    return out, logits


CASES = [  # (H, W), kernel, dilation, causal, rpb
    ((9, 11), (3, 3), (1, 1), False, False),
    ((9, 11), (3, 5), (1, 1), False, True),
    ((10, 7), (4, 2), (1, 1), False, True),  # even kernels: K // 2 before, K // 2 - 1 after
    ((13, 12), (3, 3), (2, 3), False, True),  # dilation; unequal groups (13 = 2 * 6 + 1)
    ((9, 11), (5, 3), (1, 1), True, True),
    ((12, 9), (3, 4), (2, 1), True, False),
    ((7, 5), (7, 5), (1, 1), False, True),  # the window is the whole image
]


@pytest.mark.parametrize("size, kernel, dilation, causal, with_rpb", CASES)
def test_na2d_and_its_gradients_match_the_oracle(size: Pair, kernel: Pair, dilation: Pair,
                                                 causal: bool, with_rpb: bool) -> None:
    B, heads, D, Dv = 2, 3, 4, 5
    q = randn(B, *size, heads, D, seed=1).requires_grad_()
    k = randn(B, *size, heads, D, seed=2).requires_grad_()
    v = randn(B, *size, heads, Dv, seed=3).requires_grad_()
    rpb = randn(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1, seed=4).requires_grad_() \
        if with_rpb else None
    out = na2d(q, k, v, kernel, dilation, is_causal=causal, rpb=rpb, scale=0.7)
    want, _ = oracle(q, k, v, kernel, dilation, causal, rpb, scale=0.7)
    assert out.is_contiguous()
    assert_close(out, want, what="na2d")
    g = randn(*out.shape, seed=5)
    inputs = [t for t in (q, k, v, rpb) if t is not None]
    got = torch.autograd.grad(out, inputs, g)
    ref = torch.autograd.grad(want, inputs, g)
    for name, a, e in zip(["q", "k", "v", "rpb"], got, ref):
        assert_close(a, e, what=f"grad {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_na2d_low_precision(dtype: torch.dtype) -> None:
    """16-bit and float32 inputs against the float64 oracle on the same rounded values
    (softmax in float32; the output is rounded once)."""
    size, kernel, dilation = (11, 10), (5, 3), (2, 1)
    q, k, v = (randn(2, *size, 2, 8, seed=s).to(dtype) for s in (1, 2, 3))
    rpb = randn(2, 9, 5, seed=4).to(dtype)
    out = na2d(q, k, v, kernel, dilation, rpb=rpb)
    assert out.dtype == dtype
    want, _ = oracle(*(t.double() for t in (q, k, v)), kernel, dilation, rpb=rpb.double())
    # q * scale and the logits are rounded to the dtype before the softmax: a few ulps more
    assert_close(out, want, dtype=dtype, what=f"na2d {dtype}", scale=4.0)


def heads_first(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2, 4).contiguous()


@pytest.mark.parametrize("kernel, dilation", [((3, 5), (1, 1)), ((3, 3), (2, 3)), ((4, 3), (1, 2))])
def test_unfused_ops_match_the_oracle(kernel: Pair, dilation: Pair) -> None:
    """na2d_qk gives the oracle's logits (unscaled) in NATTEN's ``(B, heads, H, W, Kh * Kw)``;
    na2d_av of their softmax gives the oracle's output; gradients flow through both."""
    size, heads, D = (13, 11), 2, 6
    q = randn(2, *size, heads, D, seed=1).requires_grad_()
    k = randn(2, *size, heads, D, seed=2).requires_grad_()
    v = randn(2, *size, heads, D, seed=3).requires_grad_()
    rpb = randn(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1, seed=4).requires_grad_()
    want, want_logits = oracle(q, k, v, kernel, dilation, rpb=rpb, scale=1.0)
    logits = na2d_qk(heads_first(q), heads_first(k), kernel, dilation, rpb=rpb)
    assert logits.shape == (2, heads, *size, kernel[0] * kernel[1])
    assert_close(logits, heads_first(want_logits.flatten(-2)), what="na2d_qk")
    out = na2d_av(logits.softmax(-1), heads_first(v), kernel, dilation)
    assert_close(out, heads_first(want), what="na2d_av")
    g = randn(*out.shape, seed=5)
    inputs = [q, k, v, rpb]
    for name, a, e in zip(["q", "k", "v", "rpb"], torch.autograd.grad(out, inputs, g),
                          torch.autograd.grad(heads_first(want), inputs, g)):
        assert_close(a, e, what=f"grad {name}")


def test_na2d_is_local_attention_2d() -> None:
    """LocalAttention2d (neighborhood) is qkv -> na2d -> proj, its bias table read as NATTEN's
    rpb with ``rpb[h, a, b] = table[a * (2Kw - 1) + b, h]``."""
    torch.manual_seed(0)
    dim, heads, kernel, dilation = 12, 3, (5, 3), (2, 1)
    m = LocalAttention2d(dim, heads, kernel, dilation=dilation).double()
    with torch.no_grad():
        m.relative_position_bias_table.normal_()
    x = randn(2, dim, 11, 9, seed=1)
    q, k, v = m.qkv(x).permute(0, 2, 3, 1).unflatten(3, (3, heads, dim // heads)).unbind(3)
    rpb = m.relative_position_bias_table.T.reshape(heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1)
    y = na2d(q, k, v, kernel, dilation, rpb=rpb, scale=m.scale)
    assert_close(m(x), m.proj(y.flatten(3).permute(0, 3, 1, 2)), what="module vs na2d")


def test_heads_last_tensors_reach_the_primitives_as_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """A contiguous heads-last key is handed to local_corr2d as a channels_last view of its
    own storage (no copy); the value likewise to local_conn2d."""
    seen = {}
    corr = localconn.window_attention.local_corr2d
    conn = localconn.window_attention.local_conn2d

    def spy_corr(a: torch.Tensor, b: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        seen["key"] = b
        return corr(a, b, *args, **kwargs)

    def spy_conn(x: torch.Tensor, w: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        seen["value"] = x
        return conn(x, w, *args, **kwargs)

    monkeypatch.setattr(localconn.window_attention, "local_corr2d", spy_corr)
    monkeypatch.setattr(localconn.window_attention, "local_conn2d", spy_conn)
    k, v = randn(2, 9, 9, 2, 4, seed=1), randn(2, 9, 9, 2, 4, seed=2)
    na2d(randn(2, 9, 9, 2, 4, seed=3), k, v, 3, fused=False)
    for name, t in (("key", k), ("value", v)):
        assert seen[name].data_ptr() == t.data_ptr(), name
        assert seen[name].is_contiguous(memory_format=torch.channels_last), name


def _runnable_backends() -> list[str]:
    """The non-reference backends available here, plus Triton's CPU interpreter where Triton
    imports."""
    names = [n for n, s in localconn.backends().items()
             if s.available and n != "reference" and n not in DEPTHWISE_ONLY]
    if "triton" not in names and importlib.util.find_spec("triton") is not None:
        names.append("triton")
    return names


@pytest.mark.parametrize("backend", _runnable_backends())
def test_every_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forced backend gives the reference's output and gradients (Triton through its
    interpreter on a machine without CUDA)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "triton" and device == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    q, k, v = (randn(1, 6, 7, 2, 4, seed=s, dtype=torch.float32).to(device).requires_grad_()
               for s in (1, 2, 3))
    rpb = randn(2, 5, 3, seed=4, dtype=torch.float32).to(device).requires_grad_()
    outs = []
    for b in (backend, "reference"):
        out = na2d(q, k, v, (3, 2), rpb=rpb, is_causal=True, backend=b)
        outs.append((out, *torch.autograd.grad(out.square().sum(), (q, k, v, rpb))))
    for name, a, e in zip(("out", "q", "k", "v", "rpb"), *outs):
        assert_close(a, e, what=f"{backend} {name}")


def test_flop_counter_and_compile() -> None:
    """FlopCounterMode counts ``2 * B * heads * H * W * Kh * Kw * (D + Dv)``; ``torch.compile``
    traces na2d whole (custom ops with fake kernels)."""
    B, H, W, heads, D, Dv, kernel = 2, 9, 10, 3, 4, 6, (3, 5)
    q, k = randn(B, H, W, heads, D, seed=1), randn(B, H, W, heads, D, seed=2)
    v = randn(B, H, W, heads, Dv, seed=3)
    with FlopCounterMode(display=False) as counter:
        na2d(q, k, v, kernel)
    taps = kernel[0] * kernel[1]
    assert counter.get_total_flops() >= 2 * B * heads * H * W * taps * (D + Dv)
    ops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert ops["localconn.corr2d"] == 2 * B * heads * H * W * taps * D
    assert ops["localconn.conn2d"] == 2 * B * heads * H * W * taps * Dv
    compiled = torch.compile(na2d, backend="aot_eager", fullgraph=True)
    assert_close(compiled(q, k, v, kernel, 2), na2d(q, k, v, kernel, 2), what="compiled")


def test_docstring_examples() -> None:
    for module in (localconn.neighborhood, localconn.attention_masks,
                   localconn.window_attention):
        result = doctest.testmod(module, extraglobs={"torch": torch})
        assert result.attempted > 0 and result.failed == 0, module.__name__


BAD = [  # (call, error, words in the message)
    (lambda q: na2d(q, q, q, 3, stride=2), ValueError, "stride"),
    (lambda q: na2d(q, q, q, 3, additional_keys=q), ValueError, "additional_keys"),
    (lambda q: na2d(q, q, q, 3, additional_values=q), ValueError, "additional_values"),
    (lambda q: na2d(q, q, q, 3, is_causal=(True, False)), ValueError, "is_causal"),
    (lambda q: na2d(q, q, q, 3, is_causal="yes"), ValueError, "is_causal"),
    (lambda q: na2d(q, q, q, 0), ValueError, "kernel_size"),
    (lambda q: na2d(q, q, q, 3, dilation=0), ValueError, "dilation"),
    (lambda q: na2d(q, q, q, 3, scale="big"), TypeError, "scale"),
    (lambda q: na2d(q, q, q, 11), ValueError, "kernel"),  # H = 9 < K
    (lambda q: na2d(q, q, q, 5, dilation=2), ValueError, "dilation"),  # 9 < K * d
    (lambda q: na2d(q[0], q, q, 3), ValueError, "query"),
    (lambda q: na2d(q, q[:, :8], q, 3), ValueError, "key"),
    (lambda q: na2d(q, q, q[:, :8], 3), ValueError, "value"),
    (lambda q: na2d(q, q.float(), q, 3), TypeError, "key"),
    (lambda q: na2d(q, q, q, 3, rpb=torch.zeros(2, 4, 5, dtype=q.dtype)), ValueError, "rpb"),
    (lambda q: na2d(q, q, q, 3, rpb=torch.zeros(2, 5, 5)), TypeError, "rpb"),
    (lambda q: na2d(q, q, q.long(), 3), TypeError, "value"),
    (lambda q: na2d_qk(q, q, 3, is_causal=True), ValueError, "is_causal"),
    (lambda q: na2d_qk(q, q, 3, additional_keys=q), ValueError, "additional_keys"),
    (lambda q: na2d_av(q, q, 3), ValueError, "attn"),
    (lambda q: na2d_av(q[..., :1].expand(*q.shape[:4], 9), q, 3, is_causal=True), ValueError,
     "is_causal"),
    (lambda q: na2d_av([1.0], q, 3), TypeError, "attn"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_is_named(case: int) -> None:
    call, error, word = BAD[case]
    q = randn(2, 9, 9, 2, 4, seed=1)
    with pytest.raises(error, match=word):
        call(q)


def test_causal_window_holds_at_most_k_keys_up_to_the_query() -> None:
    """Causality itself, without the oracle: changing keys and values after a query (along
    either axis) leaves its output unchanged; changing the one just before it does not."""
    q, k, v = (randn(1, 8, 8, 1, 4, seed=s) for s in (1, 2, 3))
    out = na2d(q, k, v, 3, is_causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 5:], v2[:, 5:] = 0.0, 1.0  # rows after 4
    k2[:, :, 6:], v2[:, :, 6:] = 0.0, 1.0  # columns after 5
    out2 = na2d(q, k2, v2, 3, is_causal=True)
    assert torch.equal(out[:, :5, :6], out2[:, :5, :6])
    assert not torch.allclose(out[:, 5:], out2[:, 5:])
    assert math.isfinite(out.abs().max().item())
