"""Equivalences with plain PyTorch formulations of the same layers.

* static spatial-shared weights == depth-wise ``F.conv2d`` (and its transpose
  / weight gradient == conv2d's input / weight gradients);
* dynamic spatial-shared weights == batch-folded grouped convolution;
* position-specific weights == the ``F.unfold`` formulation (involution);
* neighborhood / block window with the kernel as large as the image, and
  block windows in general, == softmax attention computed with matmul.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from oracle import resolve_padding
from tolerances import assert_close

import localconn

# PyTorch's own note on conv2d(padding="same") with even kernels, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

DT = torch.float64


def gen(*key: Any) -> torch.Generator:
    """A CPU generator seeded from ``key``."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def rand(g: torch.Generator, *shape: int, grad: bool = False) -> torch.Tensor:
    """float64 standard normal data."""
    return torch.randn(shape, generator=g, dtype=DT).requires_grad_(grad)


def conv_config(seed: int) -> dict[str, Any]:
    """A random valid depth-wise conv configuration (drawn reproducibly)."""
    r = random.Random(seed)
    kh, kw = r.randint(1, 5), r.randint(1, 5)
    kind = r.choice(["int", "pair", "same", "valid"])
    stride = 1 if kind == "same" else (r.randint(1, 3), r.randint(1, 3))
    dilation = (r.randint(1, 2), r.randint(1, 2))
    if kind == "int":
        padding: Any = r.randint(0, 2)
    elif kind == "pair":
        padding = (r.randint(0, 2), r.randint(0, 2))
    else:
        padding = kind
    pads = resolve_padding(padding, (kh, kw), dilation)
    size = []
    for k, d, p in zip((kh, kw), dilation, pads):
        size.append(r.randint(max(1, d * (k - 1) + 1 - sum(p)), 9))
    if r.random() < 0.5 and stride != 1:
        stride = stride[0]
    return {
        "kernel": (kh, kw),
        "size": tuple(size),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }


CONV_SEEDS = list(range(30))


@pytest.mark.parametrize("seed", CONV_SEEDS)
def test_static_spatial_shared_is_depthwise_conv2d(seed: int) -> None:
    """Weight (1, C, Kh, Kw, 1, 1) == F.conv2d(groups=C); transpose/corr == its gradients."""
    cfg = conv_config(seed)
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation")}
    N, C = 2, 3
    Kh, Kw = cfg["kernel"]
    g = gen("dw", seed)
    x = rand(g, N, C, *cfg["size"], grad=True)
    w4 = rand(g, C, 1, Kh, Kw, grad=True)
    ref = F.conv2d(x, w4, stride=cfg["stride"], padding=cfg["padding"],
                   dilation=cfg["dilation"], groups=C)
    y = localconn.local_conn2d(x.detach(), w4.detach().view(1, C, Kh, Kw, 1, 1), **kw)
    assert_close(y, ref, what=f"local_conn2d vs conv2d {cfg}")

    go = rand(g, *ref.shape)
    gx, gw = torch.autograd.grad(ref, (x, w4), go)
    xt = localconn.local_conn2d_transpose(go, w4.detach().view(1, C, Kh, Kw, 1, 1),
                                          cfg["size"], **kw)
    assert_close(xt, gx, what=f"local_conn2d_transpose vs conv2d input grad {cfg}")
    wc = localconn.local_corr2d(go, x.detach(), (1, C, Kh, Kw, 1, 1), **kw)
    assert_close(wc.view(C, 1, Kh, Kw), gw, what=f"local_corr2d vs conv2d weight grad {cfg}")

    if not isinstance(cfg["padding"], str):
        # conv_transpose2d with the output_padding that restores the input size
        s = (cfg["stride"],) * 2 if isinstance(cfg["stride"], int) else cfg["stride"]
        p = (cfg["padding"],) * 2 if isinstance(cfg["padding"], int) else cfg["padding"]
        d = cfg["dilation"]
        op = tuple(
            cfg["size"][i]
            - ((ref.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (cfg["kernel"][i] - 1) + 1)
            for i in range(2)
        )
        ct = F.conv_transpose2d(go, w4.detach(), stride=s, padding=p, output_padding=op,
                                groups=C, dilation=d)
        assert_close(xt, ct, what=f"local_conn2d_transpose vs conv_transpose2d {cfg}")


@pytest.mark.parametrize("seed", CONV_SEEDS[::2])
def test_dynamic_spatial_is_batch_folded_grouped_conv(seed: int) -> None:
    """Weight (N, C, Kh, Kw, 1, 1) == conv2d on x.view(1, N*C, H, W) with groups=N*C."""
    cfg = conv_config(1000 + seed)
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation")}
    N, C = 2, 3
    Kh, Kw = cfg["kernel"]
    H, W = cfg["size"]
    g = gen("dyn", seed)
    x = rand(g, N, C, H, W, grad=True)
    w = rand(g, N, C, Kh, Kw, grad=True)
    ref = F.conv2d(x.reshape(1, N * C, H, W), w.reshape(N * C, 1, Kh, Kw),
                   stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                   groups=N * C)
    ref = ref.view(N, C, *ref.shape[2:])
    w6 = w.detach().view(N, C, Kh, Kw, 1, 1)
    y = localconn.local_conn2d(x.detach(), w6, **kw)
    assert_close(y, ref, what=f"dynamic local_conn2d vs folded conv2d {cfg}")

    go = rand(g, *ref.shape)
    gx, gw = torch.autograd.grad(ref, (x, w), go)
    xt = localconn.local_conn2d_transpose(go, w6, (H, W), **kw)
    assert_close(xt, gx, what="dynamic local_conn2d_transpose vs folded conv2d grad")
    wc = localconn.local_corr2d(go, x.detach(), (N, C, Kh, Kw, 1, 1), **kw)
    assert_close(wc.view(N, C, Kh, Kw), gw, what="dynamic local_corr2d vs folded conv2d grad")


def unfold_conn(x: torch.Tensor, w: torch.Tensor, cfg: dict[str, Any]) -> torch.Tensor:
    """Involution-style y = sum_k W * unfold(x), with a (Nw, Cw, Kh, Kw, Ho, Wo) weight."""
    N, C = x.shape[:2]
    Kh, Kw = cfg["kernel"]
    (pt, pb), (pl, pr) = resolve_padding(cfg["padding"], cfg["kernel"], cfg["dilation"])
    xp = F.pad(x, (pl, pr, pt, pb))
    u = F.unfold(xp, (Kh, Kw), dilation=cfg["dilation"], stride=cfg["stride"])
    Nw, Cw, _, _, Ho, Wo = w.shape
    u = u.view(N, Cw, C // Cw, Kh * Kw, Ho * Wo)
    y = (u * w.reshape(Nw, Cw, 1, Kh * Kw, Ho * Wo)).sum(3)
    return y.view(N, C, Ho, Wo)


@pytest.mark.parametrize("cw", ["G", "C", "1"])
@pytest.mark.parametrize("dynamic", [True, False], ids=["Nw=N", "Nw=1"])
@pytest.mark.parametrize("seed", CONV_SEEDS[:10])
def test_position_specific_is_unfold(seed: int, dynamic: bool, cw: str) -> None:
    """Weight (N|1, G|C|1, Kh, Kw, Ho, Wo) == the F.unfold formulation, with gradients."""
    cfg = conv_config(2000 + seed)
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation")}
    N, C, G = 2, 6, 3
    Kh, Kw = cfg["kernel"]
    g = gen("unfold", seed, dynamic, cw)
    x = rand(g, N, C, *cfg["size"], grad=True)
    pads = resolve_padding(cfg["padding"], cfg["kernel"], cfg["dilation"])
    s = (cfg["stride"],) * 2 if isinstance(cfg["stride"], int) else cfg["stride"]
    d = cfg["dilation"]
    Ho = (cfg["size"][0] + sum(pads[0]) - d[0] * (Kh - 1) - 1) // s[0] + 1
    Wo = (cfg["size"][1] + sum(pads[1]) - d[1] * (Kw - 1) - 1) // s[1] + 1
    Cw = {"G": G, "C": C, "1": 1}[cw]
    w = rand(g, N if dynamic else 1, Cw, Kh, Kw, Ho, Wo, grad=True)
    ref = unfold_conn(x, w, cfg)
    y = localconn.local_conn2d(x.detach(), w.detach(), **kw)
    assert_close(y, ref, what=f"local_conn2d vs unfold {cfg}")

    go = rand(g, N, C, Ho, Wo)
    gx, gw = torch.autograd.grad(ref, (x, w), go)
    xt = localconn.local_conn2d_transpose(go, w.detach(), cfg["size"], **kw)
    assert_close(xt, gx, what=f"local_conn2d_transpose vs unfold grad {cfg}")
    wc = localconn.local_corr2d(go, x.detach(), tuple(w.shape), **kw)
    assert_close(wc, gw, what=f"local_corr2d vs unfold weight grad {cfg}")


def attention_matmul(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int
                     ) -> torch.Tensor:
    """Full softmax(q k^T) v per head over all positions, with plain matmul."""
    N, C, H, W = q.shape
    D = C // heads
    qh = q.reshape(N, heads, D, H * W).transpose(-1, -2)
    kh = k.reshape(N, heads, D, H * W)
    vh = v.reshape(N, heads, D, H * W).transpose(-1, -2)
    out = torch.softmax(qh @ kh, dim=-1) @ vh  # (N, heads, HW, D)
    return out.transpose(-1, -2).reshape(N, C, H, W)


def attention_localconn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                        kernel: tuple[int, int], window: str) -> torch.Tensor:
    """corr -> softmax over taps -> conn, all with localconn."""
    N, C, H, W = q.shape
    Kh, Kw = kernel
    logits = localconn.local_corr2d(q, k, (N, heads, Kh, Kw, H, W), window=window)
    attn = torch.softmax(logits.reshape(N, heads, Kh * Kw, H, W), dim=2)
    return localconn.local_conn2d(v, attn.reshape(N, heads, Kh, Kw, H, W), window=window)


@pytest.mark.parametrize("window", ["neighborhood", "block"])
@pytest.mark.parametrize("shape", [(1, 2, 3, 4, 1), (2, 6, 4, 3, 3), (2, 4, 5, 5, 2)],
                         ids=lambda s: f"N{s[0]}C{s[1]}H{s[2]}W{s[3]}heads{s[4]}")
def test_full_window_is_attention(shape: tuple[int, ...], window: str) -> None:
    """Kernel = image size: local attention == full softmax attention (values and grads)."""
    N, C, H, W, heads = shape
    g = gen("attn", shape, window)
    q, k, v = (rand(g, N, C, H, W, grad=True) for _ in range(3))
    ref = attention_matmul(q, k, v, heads)
    out = attention_localconn(q, k, v, heads, (H, W), window)
    assert_close(out, ref, what=f"{window} attention vs matmul attention")

    logits = localconn.local_corr2d(q, k, (N, heads, H, W, H, W), window=window)
    qh = q.reshape(N, heads, C // heads, H * W).transpose(-1, -2)
    scores = qh @ k.reshape(N, heads, C // heads, H * W)  # (N, heads, HWo, HWi)
    assert_close(logits.reshape(N, heads, H * W, H * W), scores.transpose(-1, -2),
                 what="q.k logits (taps = input positions)")

    go = rand(g, N, C, H, W)
    want = torch.autograd.grad(ref, (q, k, v), go)
    got = torch.autograd.grad(out, (q, k, v), go)
    for name, a, e in zip("qkv", got, want):
        assert_close(a, e, what=f"{window} attention grad d{name}")


@pytest.mark.parametrize("shape", [(1, 2, 4, 6, 2, 3, 1), (2, 6, 6, 4, 3, 2, 3),
                                   (2, 4, 4, 4, 2, 2, 2)],
                         ids=lambda s: f"N{s[0]}C{s[1]}H{s[2]}W{s[3]}K{s[4]}x{s[5]}heads{s[6]}")
def test_block_window_is_windowed_attention(shape: tuple[int, ...]) -> None:
    """Block window == attention inside each non-overlapping Kh x Kw window (Swin)."""
    N, C, H, W, Kh, Kw, heads = shape
    g = gen("swin", shape)
    q, k, v = (rand(g, N, C, H, W, grad=True) for _ in range(3))

    def part(t: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N * nwin, C, Kh, Kw)
        t = t.reshape(N, C, H // Kh, Kh, W // Kw, Kw).permute(0, 2, 4, 1, 3, 5)
        return t.reshape(-1, C, Kh, Kw)

    ref = attention_matmul(part(q), part(k), part(v), heads)
    ref = ref.reshape(N, H // Kh, W // Kw, C, Kh, Kw).permute(0, 3, 1, 4, 2, 5)
    ref = ref.reshape(N, C, H, W)
    out = attention_localconn(q, k, v, heads, (Kh, Kw), "block")
    assert_close(out, ref, what="block attention vs windowed matmul attention")
    go = rand(g, N, C, H, W)
    want = torch.autograd.grad(ref, (q, k, v), go)
    got = torch.autograd.grad(out, (q, k, v), go)
    for name, a, e in zip("qkv", got, want):
        assert_close(a, e, what=f"block attention grad d{name}")
