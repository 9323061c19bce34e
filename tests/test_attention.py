"""``localconn.LocalAttention2d`` against a naive float64 implementation of the definition.

The naive module below shares nothing with the package but the parameter
names: it gathers each query's keys with index tensors computed here from
the formulas of docs/design.md section 3, builds Swin's region mask with Swin's
own slice loop, adds the relative position bias indexed by key - query,
runs a masked softmax and a weighted sum.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from backend_checks import DEPTHWISE_ONLY
from random_data import randn as _randn
from tolerances import assert_close

import localconn
from localconn import LocalAttention2d
from localconn.attention_masks import attention_axes, same_region, swin_region_ids

Pair = tuple[int, int]


@pytest.fixture(autouse=True)
def reference_backend() -> Iterator[None]:
    """The math tests run on the reference backend: under ``TRITON_INTERPRET=1`` "auto"
    would pick the (very slow) Triton interpreter on CPU tensors. Other backends are
    covered by ``test_gradient_flow_every_backend`` (an explicit ``backend=`` wins)."""
    with localconn.use_backend("reference"):
        yield


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Seeded standard-normal tensor, float64 by default here."""
    return _randn(*shape, seed=seed, dtype=dtype)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random parameters, large enough that the attention is far from uniform and the
    relative position bias (init std 0.02) matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.copy_(r if "relative_position" in name else 0.5 * r)
    return module


# --------------------------------------------------------------------------- #
# The naive implementation
# --------------------------------------------------------------------------- #


def window_keys(window: str, L: int, K: int, d: int) -> tuple[torch.Tensor, ...]:
    """``(L, K)`` key index (clipped), in-image flag and offset (key - query) / d, by loops."""
    keys = torch.zeros(L, K, dtype=torch.long)
    valid = torch.zeros(L, K, dtype=torch.bool)
    offset = torch.zeros(L, K, dtype=torch.long)
    for o in range(L):
        if window == "neighborhood":
            r = o % d
            Lr = -(-(L - r) // d)
            start = r + d * min(max(o // d - K // 2, 0), Lr - K)
        elif window == "block":
            start = (o // K) * K
        else:  # sliding, zero padding K // 2 * d before the image
            start = o - (K // 2) * d
        for k in range(K):
            i = start + k * d
            assert (i - o) % d == 0
            offset[o, k] = (i - o) // d
            valid[o, k] = 0 <= i < L
            keys[o, k] = i if 0 <= i < L else 0
    return keys, valid, offset


def swin_region_grid(H: int, W: int, kernel: Pair, shift: Pair) -> torch.Tensor:
    """Swin's ``img_mask`` (SwinTransformerBlock.__init__), per-axis shift."""
    img = torch.zeros(H, W, dtype=torch.long)
    (Kh, Kw), (sh, sw) = kernel, shift
    cnt = 0
    for hs in (slice(0, -Kh), slice(-Kh, -sh), slice(-sh, None)):
        for ws in (slice(0, -Kw), slice(-Kw, -sw), slice(-sw, None)):
            img[hs, ws] = cnt
            cnt += 1
    return img


class NaiveLocalAttention(nn.Module):
    """Same parameters (names and shapes) as LocalAttention2d; the math written out."""

    def __init__(self, m: LocalAttention2d) -> None:
        super().__init__()
        self.heads, self.kernel, self.window = m.num_heads, m.kernel_size, m.window
        self.dilation, self.shift, self.scale = m.dilation, m.shift, m.scale
        self.qkv = copy.deepcopy(m.qkv)
        self.proj = copy.deepcopy(m.proj)
        table = m.relative_position_bias_table
        self.relative_position_bias_table = (
            None if table is None else nn.Parameter(table.detach().clone())
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and attention ``(N, heads, H, W, Kh, Kw)`` (queries in the input frame)."""
        N, C, H, W = x.shape
        (Kh, Kw), (sh, sw), (dh, dw) = self.kernel, self.shift, self.dilation
        hd = C // self.heads
        if self.window == "block":
            x = torch.roll(x, (-sh, -sw), (2, 3))
        qkv = torch.einsum("oc,nchw->nohw", self.qkv.weight[:, :, 0, 0], x)
        if self.qkv.bias is not None:
            qkv = qkv + self.qkv.bias[None, :, None, None]
        q, k, v = (t.reshape(N, self.heads, hd, H, W) for t in qkv.split(C, dim=1))
        ih, vh, oh = window_keys(self.window, H, Kh, dh)
        iw, vw, ow = window_keys(self.window, W, Kw, dw)
        IH, IW = ih[:, None, :, None], iw[None, :, None, :]  # -> (H, W, Kh, Kw)
        kg, vg = k[..., IH, IW], v[..., IH, IW]  # (N, heads, hd, H, W, Kh, Kw)
        logits = self.scale * (q[..., None, None] * kg).sum(2)  # (N, heads, H, W, Kh, Kw)
        if self.relative_position_bias_table is not None:
            row = (oh[:, None, :, None] + Kh - 1) * (2 * Kw - 1) + (ow[None, :, None, :] + Kw - 1)
            logits = logits + self.relative_position_bias_table[row].permute(4, 0, 1, 2, 3)
        allowed = vh[:, None, :, None] & vw[None, :, None, :]
        if self.window == "block":
            region = swin_region_grid(H, W, self.kernel, self.shift)
            allowed = allowed & (region[:, :, None, None] == region[IH, IW])
        logits = logits.masked_fill(~allowed, float("-inf"))
        attn = logits.flatten(-2).softmax(-1).view_as(logits)
        y = (attn[:, :, None] * vg).sum((-2, -1)).reshape(N, C, H, W)
        out = torch.einsum("oc,nchw->nohw", self.proj.weight[:, :, 0, 0], y)
        out = out + self.proj.bias[None, :, None, None]
        if self.window == "block":
            out = torch.roll(out, (sh, sw), (2, 3))
            attn = torch.roll(attn, (sh, sw), (2, 3))
        return out, attn


def full_attention(m: LocalAttention2d, x: torch.Tensor) -> torch.Tensor:
    """Plain multi-head self-attention over all ``H*W`` tokens, bias indexed by key - query."""
    N, C, H, W = x.shape
    heads, hd = m.num_heads, C // m.num_heads
    q, k, v = (
        t.reshape(N, heads, hd, H * W).transpose(-1, -2)
        for t in F.conv2d(x, m.qkv.weight, m.qkv.bias).chunk(3, dim=1)
    )
    logits = m.scale * q @ k.transpose(-1, -2)  # (N, heads, HW, HW)
    if m.relative_position_bias_table is not None:
        ph, pw = torch.arange(H * W) // W, torch.arange(H * W) % W
        dh, dw = ph[None, :] - ph[:, None], pw[None, :] - pw[:, None]  # key - query
        row = (dh + H - 1) * (2 * W - 1) + (dw + W - 1)
        logits = logits + m.relative_position_bias_table[row].permute(2, 0, 1)
    y = (logits.softmax(-1) @ v).transpose(-1, -2).reshape(N, C, H, W)
    return F.conv2d(y, m.proj.weight, m.proj.bias)


# --------------------------------------------------------------------------- #
# Against the naive implementation: outputs, attention maps, every gradient
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Case:
    window: str
    size: Pair
    kernel: object
    dilation: object = 1
    shift: object = 0
    rel_pos_bias: bool = True
    qkv_bias: bool = True
    heads: int = 2

    def __str__(self) -> str:
        s = f"{self.window}-{self.size[0]}x{self.size[1]}-k{self.kernel}"
        s += f"-d{self.dilation}" if self.dilation != 1 else ""
        s += f"-s{self.shift}" if self.shift != 0 else ""
        s += "" if self.rel_pos_bias else "-norpb"
        s += "" if self.qkv_bias else "-noqkvbias"
        return s.replace(" ", "")


CASES = [
    Case("neighborhood", (7, 6), 3),
    Case("neighborhood", (8, 7), 3, dilation=2),
    Case("neighborhood", (9, 8), 4, qkv_bias=False),
    Case("neighborhood", (7, 9), (2, 3), dilation=(3, 2), heads=4),
    Case("neighborhood", (6, 7), 3, dilation=2, rel_pos_bias=False),
    Case("block", (8, 8), 4),
    Case("block", (8, 12), 4, shift=2),
    Case("block", (6, 9), (2, 3), shift=(1, 2), rel_pos_bias=False),
    Case("block", (9, 6), 3, shift=1, qkv_bias=False, heads=1),
    Case("sliding", (5, 6), 3),
    Case("sliding", (6, 5), 4, rel_pos_bias=False),
    Case("sliding", (7, 7), 3, dilation=2, qkv_bias=False),
    Case("sliding", (6, 7), (2, 3), dilation=(1, 2)),
]


def make(case: Case, dim: int = 8, dtype: torch.dtype = torch.float64) -> LocalAttention2d:
    torch.manual_seed(0)
    m = LocalAttention2d(
        dim,
        case.heads,
        case.kernel,
        window=case.window,
        dilation=case.dilation,
        shift=case.shift,
        qkv_bias=case.qkv_bias,
        rel_pos_bias=case.rel_pos_bias,
    )
    return randomize(m).to(dtype)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_naive(case: Case) -> None:
    """Output, attention map, input gradient and every parameter's gradient (float64)."""
    m = make(case)
    naive = NaiveLocalAttention(m)
    assert sorted(dict(naive.named_parameters())) == sorted(dict(m.named_parameters()))
    x = randn(2, 8, *case.size, seed=1)
    xm, xn = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, (y_ref, attn_ref) = m(xm), naive(xn)
    assert_close(y, y_ref, what=f"{case} output")
    attn = m.attention_weights(x).permute(0, 1, 4, 5, 2, 3)
    assert_close(attn, attn_ref, what=f"{case} attention")
    gy = randn(*y.shape, seed=2)
    y.backward(gy)
    y_ref.backward(gy)
    assert_close(xm.grad, xn.grad, what=f"{case} grad of x")
    ref = dict(naive.named_parameters())
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{case}: {name} has no grad"
        assert_close(p.grad, ref[name].grad, what=f"{case} grad of {name}")


@pytest.mark.parametrize("rel_pos_bias", [True, False], ids=["rpb", "norpb"])
@pytest.mark.parametrize("window", ["neighborhood", "block"])
def test_window_covering_the_image_is_full_attention(window: str, rel_pos_bias: bool) -> None:
    """A neighborhood / block window of the image's size is multi-head self-attention."""
    H, W = 5, 6
    m = make(Case(window, (H, W), (H, W), rel_pos_bias=rel_pos_bias))
    x = randn(2, 8, H, W, seed=3)
    assert_close(m(x), full_attention(m, x), what=f"{window} window = image")


# --------------------------------------------------------------------------- #
# Swin's shifted-window mask, by hand
# --------------------------------------------------------------------------- #

# Swin's region ids of an 8x8 image, window 4, shift 2: per axis 0 on [0, 4),
# 1 on [4, 6), 2 on [6, 8); 2-D id = 3 * row id + column id.
REGIONS_8x8_W4_S2 = torch.tensor(
    [
        [0, 0, 0, 0, 1, 1, 2, 2],
        [0, 0, 0, 0, 1, 1, 2, 2],
        [0, 0, 0, 0, 1, 1, 2, 2],
        [0, 0, 0, 0, 1, 1, 2, 2],
        [3, 3, 3, 3, 4, 4, 5, 5],
        [3, 3, 3, 3, 4, 4, 5, 5],
        [6, 6, 6, 6, 7, 7, 8, 8],
        [6, 6, 6, 6, 7, 7, 8, 8],
    ]
)


def test_swin_shifted_window_mask_by_hand() -> None:
    """Region ids, the module's mask and its attention zeros on 8x8, window 4, shift 2."""
    ids = swin_region_ids(8, 4, 2)
    assert ids.tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert torch.equal(3 * ids[:, None] + ids[None, :], REGIONS_8x8_W4_S2)
    assert torch.equal(swin_region_grid(8, 8, (4, 4), (2, 2)), REGIONS_8x8_W4_S2)

    # the module's per-axis mask: key (block start + k) in the query's region
    axis = attention_axes("block", (8, 8), (4, 4), (1, 1))[0]
    same = same_region(axis, 2, torch.device("cpu"))  # (K, L)
    expected = torch.tensor([[ids[(o // 4) * 4 + k] == ids[o] for o in range(8)] for k in range(4)])
    assert torch.equal(same, expected)
    # e.g. rows 4, 5 (region 1) see only rows 4, 5 of their block [4, 8)
    assert same[:, 4].tolist() == [True, True, False, False]
    assert same[:, 7].tolist() == [False, False, True, True]

    m = make(Case("block", (8, 8), 4, shift=2))
    attn = m.attention_weights(randn(1, 8, 8, 8, seed=4))[0, 0]  # (Kh, Kw, H, W)
    attn = torch.roll(attn, (-2, -2), (2, 3))  # queries back in the rolled frame
    for r in range(8):
        for c in range(8):
            keys = REGIONS_8x8_W4_S2[
                (r // 4) * 4 : (r // 4) * 4 + 4, (c // 4) * 4 : (c // 4) * 4 + 4
            ]
            allowed = keys == REGIONS_8x8_W4_S2[r, c]
            assert torch.all(attn[:, :, r, c][~allowed] == 0), (r, c)
            assert torch.all(attn[:, :, r, c][allowed] > 0), (r, c)
    assert_close(attn.sum((0, 1)), torch.ones(8, 8, dtype=torch.float64), what="row sums")


# --------------------------------------------------------------------------- #
# Module behaviour
# --------------------------------------------------------------------------- #


def test_tables_cached_per_input_size() -> None:
    m = make(Case("sliding", (6, 6), 3))
    m(randn(1, 8, 6, 6))
    tables = m._tables[(6, 6, torch.device("cpu"))]
    m(randn(1, 8, 6, 6, seed=1))
    assert m._tables[(6, 6, torch.device("cpu"))] is tables
    m(randn(1, 8, 5, 7))
    assert len(m._tables) == 2


def test_relative_position_table_shape_and_init() -> None:
    m = LocalAttention2d(12, 3, (3, 5))
    assert m.relative_position_bias_table.shape == (5 * 9, 3)
    t = LocalAttention2d(16, 4, 7).relative_position_bias_table
    assert t.shape == (13 * 13, 4) and 0.01 < t.std().item() < 0.03
    assert LocalAttention2d(8, 2, 3, rel_pos_bias=False).relative_position_bias_table is None
    assert LocalAttention2d(8, 2, 3, qkv_bias=False).qkv.bias is None
    assert LocalAttention2d(8, 2, 3).scale == 4**-0.5
    assert LocalAttention2d(8, 2, 3, qk_scale=0.1).scale == 0.1


def test_channels_last_and_non_contiguous() -> None:
    m = make(Case("neighborhood", (6, 7), 3), dtype=torch.float32)
    x = randn(2, 8, 6, 7, seed=5, dtype=torch.float32)
    y = m(x)
    y_cl = m(x.contiguous(memory_format=torch.channels_last))
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    assert_close(y_cl, y, what="channels_last")
    assert_close(m(x.transpose(2, 3).contiguous().transpose(2, 3)), y, what="non-contiguous")


def test_dropout_only_in_training() -> None:
    m = LocalAttention2d(8, 2, 3, attn_drop=0.5, proj_drop=0.1).double()
    x = randn(1, 8, 6, 6)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    assert not torch.allclose(m(x), m.eval()(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 8, "num_heads": 3}, "num_heads"),
        ({"shift": 1}, "shift is only used with window='block'"),
        ({"window": "block", "shift": 3}, "shift must satisfy"),
        ({"window": "block", "dilation": 2}, "dilation"),
        ({"window": "spiral"}, "window"),
        ({"kernel_size": 0}, "kernel"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"dim": 8, "num_heads": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        LocalAttention2d(args.pop("dim"), args.pop("num_heads"), args.pop("kernel_size"), **args)


@pytest.mark.parametrize(
    "window, shape, match",
    [
        ("neighborhood", (1, 8, 5, 5), r"needs input height >= kernel \* dilation = 6"),
        ("block", (1, 8, 6, 7), "divisible"),
        ("sliding", (1, 4, 6, 6), r"x must have 8 channels, shape \(N, 8, H, W\)"),
        ("sliding", (8, 6, 6), r"x must have 4 dims \(N, 8, H, W\)"),
    ],
)
def test_bad_input(window: str, shape: tuple[int, ...], match: str) -> None:
    m = LocalAttention2d(8, 2, 3, window=window, dilation=2 if window == "neighborhood" else 1)
    with pytest.raises(ValueError, match=match):
        m(torch.randn(*shape))


# --------------------------------------------------------------------------- #
# PyTorch integration: compile, autocast, backends
# --------------------------------------------------------------------------- #


def stack(random: bool = True) -> nn.Module:
    """One layer per window kind (shifted block, dilated neighborhood, even sliding)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        LocalAttention2d(8, 2, 4, window="block", shift=2),
        LocalAttention2d(8, 2, 3, window="neighborhood", dilation=2),
        LocalAttention2d(8, 2, 2, window="sliding", rel_pos_bias=False),
    )
    return randomize(model) if random else model


def swin_layer() -> nn.Module:
    torch.manual_seed(0)
    return randomize(LocalAttention2d(8, 2, 4, window="block", shift=2))


# aot_eager traces all three windows, forward and backward (fake kernels, autograd,
# guards) in seconds; inductor's C++ codegen costs ~20 s cold on 2 cores, so it
# compiles the shifted-window layer for inference only.
COMPILE_CASES = {
    "aot_eager-stack-train": ("aot_eager", stack, True),
    "inductor-swin-inference": ("inductor", swin_layer, False),
}


@pytest.mark.parametrize("case", sorted(COMPILE_CASES))
def test_compile_fullgraph_matches_eager_without_recompiles(case: str) -> None:
    from torch._dynamo.testing import CompileCounterWithBackend

    backend, build, train = COMPILE_CASES[case]
    torch._dynamo.reset()
    eager = build()
    model = copy.deepcopy(eager)
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    for step in range(2):
        x = randn(2, 8, 8, 8, seed=10 + step, dtype=torch.float32)
        xe, xc = x.clone().requires_grad_(train), x.clone().requires_grad_(train)
        no_recompile = torch._dynamo.config.patch(error_on_recompile=True)
        with no_recompile if step else contextlib.nullcontext(), torch.set_grad_enabled(train):
            yc = compiled(xc)
            ye = eager(xe)
        assert_close(yc, ye, what=f"{case} compiled forward, step {step}")
        if not train:
            continue
        gy = randn(*ye.shape, seed=20 + step, dtype=torch.float32)
        yc.backward(gy)
        ye.backward(gy)
        assert_close(xc.grad, xe.grad, what=f"{case} compiled grad of x, step {step}")
        compiled_params = dict(model.named_parameters())
        for name, p in eager.named_parameters():
            # parameter gradients are sums over the batch and all positions
            assert_close(
                compiled_params[name].grad, p.grad, what=f"{case} compiled grad of {name}", scale=10
            )
        eager.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
    assert counter.frame_count == 1, f"{case}: compiled {counter.frame_count} times"
    torch._dynamo.reset()


def test_autocast_bfloat16_cpu() -> None:
    """Under CPU autocast the layer runs in bfloat16, as conv2d does, and trains."""
    m = stack(random=False)  # default init: logits of order 1, as in a real network
    x = randn(2, 8, 8, 8, seed=6, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        attn = m[0].attention_weights(x)
    assert y.dtype == torch.bfloat16 and attn.dtype == torch.bfloat16
    # oracle: float64 on the bfloat16-rounded parameters and input
    ref = copy.deepcopy(m).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(torch.bfloat16))
    assert_close(y, ref(x.to(torch.bfloat16).double()), dtype=torch.bfloat16, what="autocast")
    y.float().square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def _runnable_backends() -> list[str]:
    """Backends available here, plus triton through its CPU interpreter where Triton imports."""
    names = [name for name, status in localconn.backends().items()
             if status.available and name not in DEPTHWISE_ONLY]
    if "triton" not in names and importlib.util.find_spec("triton") is not None:
        names.append("triton")
    return names


AVAILABLE = _runnable_backends()


@pytest.mark.parametrize("window", ["neighborhood", "block", "sliding"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_gradient_flow_every_backend(
    backend: str, window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every parameter gets a finite, non-zero gradient, equal to the reference backend's.

    Runs on each backend available here; triton on a machine without CUDA runs
    through its interpreter (``TRITON_INTERPRET=1``, the kernels were defined
    for it by conftest.py).
    """
    if backend == "triton" and not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    kw = {"window": window, "shift": 1 if window == "block" else 0}
    torch.manual_seed(0)
    m = randomize(LocalAttention2d(8, 2, 3, backend=backend, **kw))
    ref = copy.deepcopy(m)
    ref.backend = "reference"
    x = randn(2, 8, 6, 6, seed=7, dtype=torch.float32)
    try:
        y = m(x)
    except localconn.BackendUnavailableError as err:  # triton on CPU needs TRITON_INTERPRET=1
        pytest.skip(f"{backend} declines this problem: {err}")
    y_ref = ref(x)
    assert_close(y, y_ref, what=f"{backend} output")
    gy = randn(*y.shape, seed=8, dtype=torch.float32)
    y.backward(gy)
    y_ref.backward(gy)
    ref_params = dict(ref.named_parameters())
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{backend}: {name}"
        assert p.grad.abs().sum() > 0, f"{backend}: {name} has a zero gradient"
        assert_close(p.grad, ref_params[name].grad, what=f"{backend} grad of {name}", scale=10)


@pytest.mark.parametrize("shift", [0, 2], ids=["blocks", "shifted"])
def test_pad_to_blocks_is_swin_on_the_padded_image(shift: int) -> None:
    """pad_to_blocks: the written-out attention on the image zero-padded at the bottom and
    right to whole blocks (masks of the shifted windows on the padded size), cropped; input
    gradient too; channels_last kept; without it such an image is a ValueError."""
    m = randomize(LocalAttention2d(8, 2, 4, window="block", shift=shift, pad_to_blocks=True),
                  seed=3).double()
    naive = NaiveLocalAttention(m)
    x = randn(2, 8, 9, 10, seed=4)
    xm, xn = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = m(xm)
    y_ref = naive(torch.nn.functional.pad(xn, (0, 2, 0, 3)))[0][..., :9, :10]
    assert y.shape == x.shape
    assert_close(y, y_ref, what="padded blocks")
    gy = randn(*y.shape, seed=5)
    y.backward(gy)
    y_ref.backward(gy)
    assert_close(xm.grad, xn.grad, what="padded blocks, grad of x")
    assert m(x.contiguous(memory_format=torch.channels_last)).is_contiguous(
        memory_format=torch.channels_last)
    assert "pad_to_blocks=True" in repr(m)
    plain = LocalAttention2d(8, 2, 4, window="block", shift=shift).double()
    with pytest.raises(ValueError, match="divisible"):
        plain(x)
    with pytest.raises(ValueError, match="pad_to_blocks"):
        LocalAttention2d(8, 2, 3, pad_to_blocks=True)
