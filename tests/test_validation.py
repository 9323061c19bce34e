"""Bad input gives a clear error (docs/design.md section 7); edge values behave.

Every invalid call checks the exception type *and* that the message names
the offending argument. Valid edge cases (empty batch, NaN, Inf) are
compared with a small independent gather-based oracle written here from the
formulas of docs/design.md sections 2-4, itself checked against ``F.conv2d``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from random_data import randn
from tolerances import assert_close

import localconn

N, C, H, W, K = 2, 4, 6, 9, 3

# regexes for "the message names the argument"
X_ARG = r"\bx\b|input\b"
G_ARG = r"\bg\b"
A_ARG = r"\ba\b"
B_ARG = r"\bb\b"
AB_ARG = r"\ba\b|\bb\b"


# --------------------------------------------------------------------------- #
# independent oracle (docs/design.md sections 2-4)
# --------------------------------------------------------------------------- #


def axis_index(L: int, k: int, s: int, p: int, d: int, window: str) -> torch.Tensor:
    """``(Lo, k)`` input index of each (output, tap); -1 where out of range."""
    if window == "sliding":
        lo = (L + 2 * p - d * (k - 1) - 1) // s + 1
        o = torch.arange(lo)[:, None]
        idx = o * s - p + torch.arange(k)[None, :] * d
    elif window == "neighborhood":
        rows = []
        for o in range(L):
            r = o % d
            lr = math.ceil((L - r) / d)
            start = r + d * min(max(o // d - k // 2, 0), lr - k)
            rows.append([start + t * d for t in range(k)])
        idx = torch.tensor(rows)
    elif window == "block":
        o = torch.arange(L)[:, None]
        idx = (o // k) * k + torch.arange(k)[None, :]
    else:
        raise AssertionError(window)
    return torch.where((idx >= 0) & (idx < L), idx, torch.full_like(idx, -1))


def gather_taps(
    x: torch.Tensor, ih: torch.Tensor, iw: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` at every tap: ``(N, C, Kh, Kw, Ho, Wo)`` and the validity mask."""
    hi = ih.clamp(min=0)[:, :, None, None]
    wi = iw.clamp(min=0)[None, None, :, :]
    xg = x[:, :, hi, wi].permute(0, 1, 3, 5, 2, 4)
    valid = ((ih >= 0)[:, :, None, None] & (iw >= 0)[None, None, :, :]).permute(1, 3, 0, 2)
    return xg, valid


def expand_weight(w: torch.Tensor, n: int, c: int, ho: int, wo: int) -> torch.Tensor:
    """Broadcast a 6-D weight to ``(N, C, Kh, Kw, Ho, Wo)``."""
    w = w.repeat_interleave(c // w.shape[1], dim=1)
    return w.expand(n, c, w.shape[2], w.shape[3], ho, wo)


def oracle_indices(
    size: tuple[int, int], kh: int, kw: int, s: int, p: int, d: int, window: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        axis_index(size[0], kh, s, p, d, window),
        axis_index(size[1], kw, s, p, d, window),
    )


def oracle_conn(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    s: int,
    p: int,
    d: int,
    window: str,
) -> torch.Tensor:
    ih, iw = oracle_indices(tuple(x.shape[2:]), w.shape[2], w.shape[3], s, p, d, window)
    xg, valid = gather_taps(x, ih, iw)
    we = expand_weight(w, x.shape[0], x.shape[1], ih.shape[0], iw.shape[0])
    y = torch.where(valid, we * xg, torch.zeros((), dtype=x.dtype)).sum((2, 3))
    return y if bias is None else y + bias[:, None, None]


def oracle_conn_t(
    g: torch.Tensor,
    w: torch.Tensor,
    size: tuple[int, int],
    s: int,
    p: int,
    d: int,
    window: str,
) -> torch.Tensor:
    n, c, ho, wo = g.shape
    ih, iw = oracle_indices(size, w.shape[2], w.shape[3], s, p, d, window)
    we = expand_weight(w, n, c, ho, wo)
    contrib = we * g[:, :, None, None]  # (N, C, Kh, Kw, Ho, Wo)
    hi = ih.T[:, None, :, None].expand(-1, w.shape[3], -1, wo)  # (Kh, Kw, Ho, Wo)
    wi = iw.T[None, :, None, :].expand(w.shape[2], -1, ho, -1)
    valid = (hi >= 0) & (wi >= 0)
    flat = (hi * size[1] + wi)[valid]
    out = torch.zeros(n, c, size[0] * size[1], dtype=g.dtype)
    out.index_add_(2, flat, contrib[:, :, valid])
    return out.reshape(n, c, *size)


def oracle_corr(
    a: torch.Tensor,
    b: torch.Tensor,
    shape: tuple[int, ...],
    s: int,
    p: int,
    d: int,
    window: str,
) -> torch.Tensor:
    nw, cw, kh, kw, hw, ww = shape
    ih, iw = oracle_indices(tuple(b.shape[2:]), kh, kw, s, p, d, window)
    bg, valid = gather_taps(b, ih, iw)
    prod = torch.where(valid, a[:, :, None, None] * bg, torch.zeros((), dtype=a.dtype))
    n, c = a.shape[:2]
    prod = prod.reshape(n, cw, c // cw, *prod.shape[2:]).sum(2)
    if nw == 1:
        prod = prod.sum(0, keepdim=True)
    if hw == 1:
        prod = prod.sum(4, keepdim=True)
    if ww == 1:
        prod = prod.sum(5, keepdim=True)
    return prod


@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 0, 1), (2, 3, 2)])
def test_oracle_matches_conv2d(stride: int, padding: int, dilation: int) -> None:
    """The oracle of this file agrees with depth-wise ``F.conv2d`` (a test of the test)."""
    x = randn(N, C, H, W, seed=1, dtype=torch.float64)
    k = randn(C, 1, 3, 2, seed=2, dtype=torch.float64)
    b = randn(C, seed=3, dtype=torch.float64)
    w = k[:, 0][None, :, :, :, None, None]
    expected = F.conv2d(x, k, b, stride, padding, dilation, groups=C)
    got = oracle_conn(x, w, b, stride, padding, dilation, "sliding")
    assert_close(got, expected, what="oracle conn")
    g = randn(*expected.shape, seed=4, dtype=torch.float64)
    xt = oracle_conn_t(g, w, (H, W), stride, padding, dilation, "sliding")
    xr = x.clone().requires_grad_()
    F.conv2d(xr, k, None, stride, padding, dilation, groups=C).backward(g)
    assert_close(xt, xr.grad, what="oracle conn_t")
    kr = k.clone().requires_grad_()
    F.conv2d(x, kr, None, stride, padding, dilation, groups=C).backward(g)
    wc = oracle_corr(g, x, (1, C, 3, 2, 1, 1), stride, padding, dilation, "sliding")
    assert_close(wc[0, :, :, :, 0, 0], kr.grad[:, 0], what="oracle corr")


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #


def w6(*shape: int, seed: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A weight of the given shape (default ``(1, C, K, K, 1, 1)``)."""
    return randn(*(shape or (1, C, K, K, 1, 1)), seed=seed, dtype=dtype)


def x4(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An input of the given shape (default ``(N, C, H, W)``)."""
    return randn(*(shape or (N, C, H, W)), seed=1, dtype=dtype)


def conn(**kw: Any) -> torch.Tensor:
    """``local_conn2d`` with valid defaults (stride 1, padding 1: output H x W)."""
    args = {"x": x4(), "weight": w6(), "bias": None, "padding": 1}
    args.update(kw)
    return localconn.local_conn2d(args.pop("x"), args.pop("weight"), args.pop("bias"), **args)


def conn_t(**kw: Any) -> torch.Tensor:
    """``local_conn2d_transpose`` with valid defaults (g is H x W, input_size (H, W))."""
    args = {"g": x4(), "weight": w6(), "input_size": (H, W), "padding": 1}
    args.update(kw)
    return localconn.local_conn2d_transpose(
        args.pop("g"), args.pop("weight"), args.pop("input_size"), **args
    )


def corr(**kw: Any) -> torch.Tensor:
    """``local_corr2d`` with valid defaults (a, b are H x W, weight (1, C, K, K, 1, 1))."""
    args = {
        "a": x4(),
        "b": randn(N, C, H, W, seed=5),
        "weight_shape": (1, C, K, K, 1, 1),
        "padding": 1,
    }
    args.update(kw)
    return localconn.local_corr2d(args.pop("a"), args.pop("b"), args.pop("weight_shape"), **args)


OPS: dict[str, Callable[..., torch.Tensor]] = {"conn": conn, "conn_t": conn_t, "corr": corr}

# Shape / size / argument errors -> ValueError.
VALUE_CASES: dict[str, tuple[Callable[[], Any], str]] = {
    # ranks
    "conn-x-rank3": (lambda: conn(x=x4(C, H, W)), X_ARG),
    "conn-x-rank5": (lambda: conn(x=x4(1, N, C, H, W)), X_ARG),
    "conn-weight-rank5": (lambda: conn(weight=w6(1, C, K, K, 1)), "weight"),
    "conn-weight-rank7": (lambda: conn(weight=w6(1, 1, C, K, K, 1, 1)), "weight"),
    "conn-bias-rank2": (lambda: conn(bias=w6(1, C)), "bias"),
    "conn-bias-rank0": (lambda: conn(bias=torch.tensor(1.5)), "bias"),
    "conn-bias-length": (lambda: conn(bias=w6(C + 1)), "bias"),
    "conn_t-g-rank3": (lambda: conn_t(g=x4(C, H, W)), G_ARG),
    "conn_t-weight-rank5": (lambda: conn_t(weight=w6(1, C, K, K, 1)), "weight"),
    "corr-a-rank3": (lambda: corr(a=x4(C, H, W)), A_ARG),
    "corr-b-rank5": (lambda: corr(b=x4(1, N, C, H, W)), B_ARG),
    # weight broadcast dims
    "conn-weight-Nw": (lambda: conn(weight=w6(3, C, K, K, 1, 1)), "weight"),
    "conn-weight-Cw-not-divisor": (lambda: conn(weight=w6(1, 3, K, K, 1, 1)), "weight"),
    "conn-weight-Cw-multiple": (lambda: conn(weight=w6(1, 2 * C, K, K, 1, 1)), "weight"),
    "conn-weight-Hw": (lambda: conn(weight=w6(1, C, K, K, 2, 1)), "weight"),
    "conn-weight-Ww": (lambda: conn(weight=w6(1, C, K, K, 1, W - 1)), "weight"),
    "conn-weight-Hw-is-input-size": (
        # stride 2: output is 3 x 5, a weight sized like the input is wrong
        lambda: conn(weight=w6(1, C, K, K, H, 1), stride=2),
        "weight",
    ),
    "conn-weight-K0": (lambda: conn(weight=w6(1, C, 0, K, 1, 1)), "weight"),
    "conn_t-weight-Nw": (lambda: conn_t(weight=w6(3, C, K, K, 1, 1)), "weight"),
    "conn_t-weight-Cw": (lambda: conn_t(weight=w6(1, 3, K, K, 1, 1)), "weight"),
    "conn_t-weight-Ww": (lambda: conn_t(weight=w6(1, C, K, K, 1, 2)), "weight"),
    # weight_shape of local_corr2d
    "corr-weight_shape-len5": (lambda: corr(weight_shape=(1, C, K, K, 1)), "weight_shape"),
    "corr-weight_shape-K0": (lambda: corr(weight_shape=(1, C, 0, K, 1, 1)), "weight_shape"),
    "corr-weight_shape-Kneg": (lambda: corr(weight_shape=(1, C, K, -3, 1, 1)), "weight_shape"),
    "corr-weight_shape-Nw": (lambda: corr(weight_shape=(3, C, K, K, 1, 1)), "weight_shape"),
    "corr-weight_shape-Cw": (lambda: corr(weight_shape=(1, 3, K, K, 1, 1)), "weight_shape"),
    "corr-weight_shape-Hw": (lambda: corr(weight_shape=(1, C, K, K, 2, 1)), "weight_shape"),
    "corr-weight_shape-Ww": (lambda: corr(weight_shape=(1, C, K, K, H, W + 1)), "weight_shape"),
    # stride / dilation / padding values
    "conn-stride0": (lambda: conn(stride=0), "stride"),
    "conn-stride-pair0": (lambda: conn(stride=(1, 0)), "stride"),
    "conn-stride-neg": (lambda: conn(stride=-1), "stride"),
    "conn-stride-len3": (lambda: conn(stride=(1, 1, 1)), "stride"),
    "conn-dilation0": (lambda: conn(dilation=0), "dilation"),
    "conn-dilation-pair0": (lambda: conn(dilation=(0, 1)), "dilation"),
    "conn-padding-neg": (lambda: conn(padding=-1), "padding"),
    "conn-padding-pair-neg": (lambda: conn(padding=(0, -1)), "padding"),
    "conn-padding-len3": (lambda: conn(padding=(1, 1, 1)), "padding"),
    "conn-padding-same-stride2": (lambda: conn(padding="same", stride=2), "padding"),
    "conn-padding-unknown": (lambda: conn(padding="full"), "padding"),
    "conn_t-stride0": (lambda: conn_t(stride=0), "stride"),
    "conn_t-dilation0": (lambda: conn_t(dilation=0), "dilation"),
    "conn_t-padding-neg": (lambda: conn_t(padding=-2), "padding"),
    "conn_t-padding-same-stride2": (lambda: conn_t(padding="same", stride=2), "padding"),
    "conn_t-padding-unknown": (lambda: conn_t(padding="circular"), "padding"),
    "corr-stride0": (lambda: corr(stride=(0, 1)), "stride"),
    "corr-dilation0": (lambda: corr(dilation=0), "dilation"),
    "corr-padding-neg": (lambda: corr(padding=-1), "padding"),
    "corr-padding-same-stride2": (lambda: corr(padding="same", stride=(1, 2)), "padding"),
    "corr-padding-unknown": (lambda: corr(padding="SAME!"), "padding"),
    # empty output (kernel larger than the padded input)
    "conn-empty-output": (
        lambda: conn(x=x4(N, C, 2, 2), weight=w6(1, C, 5, 5, 1, 1), padding=0),
        r"(?i)output|kernel|weight|input|\bx\b",
    ),
    "conn-empty-output-dilation": (
        lambda: conn(x=x4(N, C, 4, 4), weight=w6(1, C, 3, 3, 1, 1), padding=0, dilation=2),
        r"(?i)output|kernel|weight|input|\bx\b|dilation",
    ),
    "conn_t-empty-output": (
        lambda: conn_t(g=x4(N, C, 1, 1), weight=w6(1, C, 5, 5, 1, 1), input_size=(2, 2), padding=0),
        r"(?i)output|kernel|weight|input_size|\bg\b",
    ),
    "corr-empty-output": (
        lambda: corr(weight_shape=(1, C, 9, 9, 1, 1), padding=0),
        r"(?i)output|kernel|weight_shape|\ba\b|\bb\b",
    ),
    # neighborhood window
    "conn-neighborhood-L-lt-Kd": (
        lambda: conn(window="neighborhood", dilation=3, padding=0),  # 6 < 3 * 3
        r"(?i)dilation|kernel|weight|window|neighbo|input|\bx\b",
    ),
    "conn-neighborhood-L-lt-K": (
        lambda: conn(window="neighborhood", weight=w6(1, C, 7, 3, 1, 1), padding=0),
        r"(?i)kernel|weight|window|neighbo|input|\bx\b",
    ),
    "conn_t-neighborhood-L-lt-Kd": (
        lambda: conn_t(window="neighborhood", dilation=(1, 4), padding=0),  # 9 < 3 * 4
        r"(?i)dilation|kernel|weight|window|neighbo|input_size",
    ),
    "corr-neighborhood-L-lt-Kd": (
        lambda: corr(window="neighborhood", dilation=(3, 1), padding=0),
        r"(?i)dilation|kernel|weight_shape|window|neighbo|\bb\b",
    ),
    "conn-neighborhood-stride": (
        lambda: conn(window="neighborhood", stride=2, padding=0),
        "stride",
    ),
    "conn-neighborhood-padding": (lambda: conn(window="neighborhood", padding=1), "padding"),
    "conn_t-neighborhood-stride": (
        lambda: conn_t(window="neighborhood", stride=(1, 2), padding=0),
        "stride",
    ),
    "conn_t-neighborhood-padding": (
        lambda: conn_t(window="neighborhood", padding=(0, 1)),
        "padding",
    ),
    "corr-neighborhood-stride": (
        lambda: corr(window="neighborhood", stride=2, padding=0),
        "stride",
    ),
    "corr-neighborhood-padding": (lambda: corr(window="neighborhood", padding=2), "padding"),
    # block window
    "conn-block-stride": (lambda: conn(window="block", stride=3, padding=0), "stride"),
    "conn-block-padding": (lambda: conn(window="block", padding=1), "padding"),
    "conn-block-dilation": (lambda: conn(window="block", dilation=2, padding=0), "dilation"),
    "conn_t-block-stride": (lambda: conn_t(window="block", stride=3, padding=0), "stride"),
    "conn_t-block-padding": (lambda: conn_t(window="block", padding=1), "padding"),
    "conn_t-block-dilation": (
        lambda: conn_t(window="block", dilation=(2, 1), padding=0),
        "dilation",
    ),
    "corr-block-stride": (lambda: corr(window="block", stride=(3, 1), padding=0), "stride"),
    "corr-block-padding": (lambda: corr(window="block", padding=(1, 0)), "padding"),
    "corr-block-dilation": (lambda: corr(window="block", dilation=2, padding=0), "dilation"),
    "conn-block-not-divisible": (
        lambda: conn(window="block", x=x4(N, C, H, 8), padding=0),
        r"(?i)kernel|weight|window|block|divis|input|\bx\b",
    ),
    "conn_t-block-not-divisible": (
        lambda: conn_t(window="block", g=x4(N, C, 7, W), input_size=(7, W), padding=0),
        r"(?i)kernel|weight|window|block|divis|input_size",
    ),
    "corr-block-not-divisible": (
        lambda: corr(window="block", a=x4(N, C, H, 8), b=x4(N, C, H, 8), padding=0),
        r"(?i)kernel|weight_shape|window|block|divis|\bb\b",
    ),
    # unknown window / backend
    "conn-window-unknown": (lambda: conn(window="global"), "window"),
    "conn_t-window-unknown": (lambda: conn_t(window="Sliding "), "window"),
    "corr-window-unknown": (lambda: corr(window="swin"), "window"),
    "conn-backend-unknown": (lambda: conn(backend="opencl"), "backend"),
    "conn_t-backend-unknown": (lambda: conn_t(backend="nope"), "backend"),
    "corr-backend-unknown": (lambda: corr(backend="cudnn"), "backend"),
    # transpose input_size
    "conn_t-input_size-inconsistent": (lambda: conn_t(input_size=(H + 4, W)), "input_size"),
    "conn_t-input_size-inconsistent-stride2": (
        # g is 3 x 5 = output of 6 x 9 (or 5 x 10) at stride 2; 9 x 9 gives 5 x 5
        lambda: conn_t(g=x4(N, C, 3, 5), input_size=(9, 9), stride=2),
        "input_size",
    ),
    "conn_t-input_size-len3": (lambda: conn_t(input_size=(1, H, W)), "input_size"),
    "conn_t-input_size-len1": (lambda: conn_t(input_size=(H,)), "input_size"),
    "conn_t-input_size-zero": (
        lambda: conn_t(input_size=(0, W), g=x4(N, C, 0, W)),
        r"input_size|output",
    ),
    "conn_t-input_size-neighborhood": (
        lambda: conn_t(window="neighborhood", input_size=(H, W + 1), padding=0),
        "input_size",
    ),
    "conn_t-g-batch-vs-weight": (
        lambda: conn_t(g=x4(3, C, H, W), weight=w6(N, C, K, K, 1, 1)),
        r"weight|\bg\b",
    ),
    # corr a / b mismatch
    "corr-ab-batch": (lambda: corr(a=x4(N + 1, C, H, W)), AB_ARG),
    "corr-ab-channels": (lambda: corr(a=x4(N, C + 2, H, W)), AB_ARG),
    "corr-ab-spatial": (lambda: corr(a=x4(N, C, H - 1, W)), AB_ARG),
    "corr-ab-spatial-stride2": (lambda: corr(a=x4(N, C, H, W), stride=2), AB_ARG),
}


@pytest.mark.parametrize("case", sorted(VALUE_CASES))
def test_value_error(case: str) -> None:
    """Shapes, sizes and argument values: ValueError naming the argument."""
    fn, match = VALUE_CASES[case]
    with pytest.raises(ValueError, match=match):
        fn()


META = "meta"

# dtype / device / non-tensor errors -> TypeError.
TYPE_CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "conn-x-int": (lambda: conn(x=torch.randint(0, 5, (N, C, H, W))), X_ARG),
    "conn-x-bool": (lambda: conn(x=x4() > 0, weight=w6() > 0), X_ARG),
    "conn-x-complex": (
        lambda: conn(x=x4(dtype=torch.complex64), weight=w6(dtype=torch.complex64)),
        X_ARG,
    ),
    "conn-weight-int": (lambda: conn(weight=torch.randint(1, 5, (1, C, K, K, 1, 1))), "weight"),
    "conn-bias-int": (lambda: conn(bias=torch.arange(1, C + 1)), "bias"),
    "conn-x-f32-weight-f64": (lambda: conn(weight=w6(dtype=torch.float64)), "weight"),
    "conn-x-f64-weight-f32": (lambda: conn(x=x4(dtype=torch.float64)), "weight"),
    "conn-x-f16-weight-f32": (lambda: conn(x=x4(dtype=torch.float16)), "weight"),
    "conn-bias-f64": (lambda: conn(bias=w6(C, dtype=torch.float64)), "bias"),
    "conn-bias-bf16": (lambda: conn(bias=w6(C, dtype=torch.bfloat16)), "bias"),
    "conn-x-list": (lambda: conn(x=x4().tolist()), X_ARG),
    "conn-x-numpy": (lambda: conn(x=x4().numpy()), X_ARG),
    "conn-weight-numpy": (lambda: conn(weight=np.ones((1, C, K, K, 1, 1), np.float32)), "weight"),
    "conn-bias-list": (lambda: conn(bias=[1.0] * C), "bias"),
    "conn-weight-meta": (lambda: conn(weight=w6().to(META)), "weight"),
    "conn-bias-meta": (lambda: conn(bias=w6(C).to(META)), "bias"),
    "conn_t-g-int": (lambda: conn_t(g=torch.randint(0, 5, (N, C, H, W))), G_ARG),
    "conn_t-g-f64-weight-f32": (lambda: conn_t(g=x4(dtype=torch.float64)), r"weight|\bg\b"),
    "conn_t-g-numpy": (lambda: conn_t(g=x4().numpy()), G_ARG),
    "conn_t-weight-meta": (lambda: conn_t(weight=w6().to(META)), "weight"),
    "corr-a-int": (lambda: corr(a=torch.randint(0, 5, (N, C, H, W))), A_ARG),
    "corr-b-int": (lambda: corr(b=torch.randint(0, 5, (N, C, H, W))), B_ARG),
    "corr-a-f32-b-f64": (lambda: corr(b=x4(dtype=torch.float64)), AB_ARG),
    "corr-b-list": (lambda: corr(b=x4().tolist()), B_ARG),
    "corr-b-meta": (lambda: corr(b=x4().to(META)), AB_ARG),
}


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_type_error(case: str) -> None:
    """dtypes, devices, non-tensors: TypeError naming the argument."""
    fn, match = TYPE_CASES[case]
    with pytest.raises(TypeError, match=match):
        fn()


@pytest.mark.parametrize("op", sorted(OPS))
def test_error_message_states_expected_and_given(op: str) -> None:
    """The message states what was given (here: the bad stride value -3)."""
    with pytest.raises(ValueError, match="stride") as info:
        OPS[op](stride=(1, -3))
    assert "-3" in str(info.value), str(info.value)


def test_validation_happens_before_any_kernel_on_meta() -> None:
    """All-meta inputs with a bad kernel size are still rejected by validation."""
    with pytest.raises(ValueError, match="weight"):
        localconn.local_conn2d(x4().to(META), w6(1, 3, K, K, 1, 1).to(META), padding=1)


# --------------------------------------------------------------------------- #
# empty batch
# --------------------------------------------------------------------------- #

WINDOWS = [
    ("sliding", {"stride": 2, "padding": 1, "dilation": 1}),
    ("sliding", {"stride": 1, "padding": 2, "dilation": 2}),
    ("neighborhood", {"dilation": 2}),
    ("block", {}),
]


def out_size(window: str, kw: dict[str, int]) -> tuple[int, int]:
    """Output size of an ``H x W`` input with a ``K x K`` kernel."""
    if window != "sliding":
        return H, W
    s, p, d = kw["stride"], kw["padding"], kw["dilation"]
    return (H + 2 * p - d * (K - 1) - 1) // s + 1, (W + 2 * p - d * (K - 1) - 1) // s + 1


@pytest.mark.parametrize(("window", "kw"), WINDOWS)
def test_empty_batch(window: str, kw: dict[str, int]) -> None:
    """N = 0 gives empty outputs of the right shape for all three ops, and backward runs."""
    ho, wo = out_size(window, kw)
    x = x4(0, C, H, W).requires_grad_()
    w = w6(1, C, K, K, ho, wo).requires_grad_()
    b = w6(C, seed=7).requires_grad_()
    y = localconn.local_conn2d(x, w, b, window=window, **kw)
    assert y.shape == (0, C, ho, wo)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert w.grad is not None and b.grad is not None
    assert_close(w.grad, torch.zeros_like(w), what="weight grad of an empty batch")
    assert_close(b.grad, torch.zeros_like(b), what="bias grad of an empty batch")

    wd = w6(0, C, K, K, ho, wo)  # dynamic weight, Nw = N = 0
    assert localconn.local_conn2d(x.detach(), wd, window=window, **kw).shape == (0, C, ho, wo)

    g = x4(0, C, ho, wo)
    xt = localconn.local_conn2d_transpose(g, w.detach(), (H, W), window=window, **kw)
    assert xt.shape == (0, C, H, W)

    shape = (1, 2, K, K, ho, wo)
    gw = localconn.local_corr2d(g, x.detach(), shape, window=window, **kw)
    assert gw.shape == shape
    assert_close(gw, torch.zeros(shape), what="corr summed over an empty batch")
    shape0 = (0, C, K, K, 1, wo)
    assert localconn.local_corr2d(g, x.detach(), shape0, window=window, **kw).shape == shape0


# --------------------------------------------------------------------------- #
# NaN and Inf
# --------------------------------------------------------------------------- #

NONFINITE_CONFIGS = [
    ("sliding", 3, 3, 1, 1, 1),
    ("sliding", 3, 2, 2, 0, 2),
    ("sliding", 5, 5, 1, 0, 1),
    ("neighborhood", 3, 3, 1, 0, 1),
    ("neighborhood", 3, 3, 1, 0, 2),
    ("neighborhood", 4, 2, 1, 0, 1),
    ("block", 3, 3, 1, 0, 1),
]


def _case_ids(cfg: tuple[Any, ...]) -> str:
    return "-".join(str(v) for v in cfg)


def assert_nonfinite_match(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Same NaN, +Inf and -Inf positions, and close finite values."""
    for name, fn in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        m_got, m_exp = fn(got), fn(expected)
        assert torch.equal(m_got, m_exp), (
            f"{what}: {name} mask differs at {(m_got != m_exp).nonzero()[:5].tolist()} "
            f"({int(m_got.sum())} got vs {int(m_exp.sum())} expected)"
        )
    finite = torch.isfinite(expected)
    assert_close(got[finite], expected[finite], what=what)


def poison(t: torch.Tensor, values: dict[tuple[int, ...], float]) -> torch.Tensor:
    """A copy of ``t`` with the given entries replaced."""
    t = t.clone()
    for idx, v in values.items():
        t[idx] = v
    return t


NAN_AT = {(0, 1, 2, 3): math.nan, (1, 3, 0, 0): math.nan, (1, 0, H - 1, W - 1): math.nan}
INF_AT = {
    (0, 2, 1, 4): math.inf,
    (1, 1, 5, 8): -math.inf,
    (0, 3, 2, 2): math.inf,
    (0, 3, 3, 3): -math.inf,
}  # +/-Inf in one window of channel 3 give NaN there


@pytest.mark.parametrize("cfg", NONFINITE_CONFIGS, ids=_case_ids)
def test_nan_in_x_propagates_exactly_to_covering_windows(cfg: tuple[Any, ...]) -> None:
    """NaN in x reaches exactly the outputs whose window covers it."""
    window, kh, kw, s, p, d = cfg
    x = poison(x4(dtype=torch.float64), NAN_AT)
    ih, iw = oracle_indices((H, W), kh, kw, s, p, d, window)
    w = w6(N, 2, kh, kw, ih.shape[0], iw.shape[0], dtype=torch.float64)
    b = w6(C, seed=9, dtype=torch.float64)
    y = localconn.local_conn2d(x, w, b, stride=s, padding=p, dilation=d, window=window)
    # expected mask straight from the window definition
    xg, valid = gather_taps(torch.isnan(x), ih, iw)
    expected_mask = (xg & valid).any(3).any(2)
    assert expected_mask.any() and not expected_mask.all()
    assert torch.equal(torch.isnan(y), expected_mask), (
        f"NaN mask differs at {(torch.isnan(y) != expected_mask).nonzero()[:5].tolist()}"
    )
    assert_nonfinite_match(y, oracle_conn(x, w, b, s, p, d, window), "conn with NaN")


@pytest.mark.parametrize("cfg", NONFINITE_CONFIGS, ids=_case_ids)
def test_inf_in_x_as_reference(cfg: tuple[Any, ...]) -> None:
    """+/-Inf in x give +/-Inf (or NaN where both meet) exactly where the oracle does."""
    window, kh, kw, s, p, d = cfg
    x = poison(x4(dtype=torch.float64), INF_AT)
    ih, iw = oracle_indices((H, W), kh, kw, s, p, d, window)
    w = w6(1, C, kh, kw, ih.shape[0], iw.shape[0], dtype=torch.float64)
    y = localconn.local_conn2d(x, w, stride=s, padding=p, dilation=d, window=window)
    expected = oracle_conn(x, w, None, s, p, d, window)
    assert torch.isinf(expected).any()
    assert_nonfinite_match(y, expected, "conn with Inf")


@pytest.mark.parametrize("cfg", NONFINITE_CONFIGS, ids=_case_ids)
def test_nonfinite_in_transpose_and_corr(cfg: tuple[Any, ...]) -> None:
    """NaN/Inf in g (transpose) and in b (corr) propagate as in the oracle."""
    window, kh, kw, s, p, d = cfg
    ih, iw = oracle_indices((H, W), kh, kw, s, p, d, window)
    ho, wo = ih.shape[0], iw.shape[0]
    g = poison(
        randn(N, C, ho, wo, seed=11, dtype=torch.float64),
        {(0, 1, ho // 2, wo // 2): math.nan, (1, 2, ho - 1, 0): math.inf},
    )
    w = w6(N, 1, kh, kw, ho, 1, dtype=torch.float64)
    xt = localconn.local_conn2d_transpose(
        g, w, (H, W), stride=s, padding=p, dilation=d, window=window
    )
    assert_nonfinite_match(xt, oracle_conn_t(g, w, (H, W), s, p, d, window), "conn_t")

    b = poison(x4(dtype=torch.float64), {(0, 0, 2, 3): math.nan, (1, 3, 4, 4): -math.inf})
    a = randn(N, C, ho, wo, seed=12, dtype=torch.float64)
    shape = (N, 2, kh, kw, ho, wo)
    gw = localconn.local_corr2d(a, b, shape, stride=s, padding=p, dilation=d, window=window)
    assert_nonfinite_match(gw, oracle_corr(a, b, shape, s, p, d, window), "corr")
