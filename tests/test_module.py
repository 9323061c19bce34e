"""``localconn.LocalConn2d``: every mode, shapes, nn.Conv2d equivalence, gradients."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st
from random_data import randn, randomize
from tolerances import assert_close

import localconn
from localconn import LocalConn2d

N, C, G, K, H, W = 3, 8, 2, 3, 6, 9

MODES = list(
    itertools.product(
        ["spatial", "channel", "none"], [False, True], ["sliding", "neighborhood", "block"]
    )
)


def mode_id(mode: tuple[str, bool, str]) -> str:
    share, dynamic, window = mode
    return f"{share}-{'dynamic' if dynamic else 'static'}-{window}"


def make(
    share: str, dynamic: bool, window: str, size: tuple[int, int] = (H, W), **kw: Any
) -> LocalConn2d:
    """A module of the given mode with the arguments that mode requires."""
    torch.manual_seed(0)
    if share == "channel":
        kw.setdefault("groups", G)
    if share != "spatial" and not dynamic:
        kw.setdefault("input_size", size)
    return LocalConn2d(C, K, share=share, dynamic=dynamic, window=window, **kw)


def functional_kwargs(window: str) -> dict[str, Any]:
    """Arguments of ``local_conn2d`` equal to a default module's for this window."""
    return {"padding": K // 2} if window == "sliding" else {"padding": 0, "window": window}


def static_weight6(m: LocalConn2d) -> torch.Tensor:
    """The module's static weight in the canonical 6-D layout."""
    if m.weight.dim() == 4:  # spatial: nn.Conv2d layout (C, 1, Kh, Kw)
        return m.weight[:, 0][None, :, :, :, None, None]
    return m.weight


# --------------------------------------------------------------------------- #
# every mode
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_every_mode_shapes_and_parameters(mode: tuple[str, bool, str]) -> None:
    """Output shape, parameter shapes, and (static) the output of the functional op."""
    share, dynamic, window = mode
    m = make(share, dynamic, window)
    randomize(m)
    x = randn(N, C, H, W, seed=1)
    y = m(x)
    assert y.shape == (N, C, H, W) and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert m.bias is not None and m.bias.shape == (C,)
    if dynamic:
        assert isinstance(m.generator, nn.Module)
        assert any(True for _ in m.generator.parameters())
        return
    expected_shape = {
        "spatial": (C, 1, K, K),
        "channel": (1, G, K, K, H, W),
        "none": (1, C, K, K, H, W),
    }[share]
    assert tuple(m.weight.shape) == expected_shape
    expected = localconn.local_conn2d(x, static_weight6(m), m.bias, **functional_kwargs(window))
    assert_close(y, expected, what=f"{mode_id(mode)} vs local_conn2d")


@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_static_is_linear_dynamic_is_not(mode: tuple[str, bool, str]) -> None:
    """y(2x) - b == 2 (y(x) - b) for static weights only (dynamic weights depend on x)."""
    share, dynamic, window = mode
    m = make(share, dynamic, window).eval()
    randomize(m)
    # per-channel offsets: the pooled input (spatial generator) is not ~0
    x = randn(N, C, H, W, seed=2) + randn(N, C, 1, 1, seed=3)
    b = m.bias[:, None, None]
    with torch.no_grad():
        lhs, rhs = m(2 * x) - b, 2 * (m(x) - b)
    if dynamic:
        assert not torch.allclose(lhs, rhs, rtol=1e-2, atol=1e-2), "dynamic module is linear"
    else:
        assert_close(lhs, rhs, what="static module linearity")


@pytest.mark.parametrize("mode", [m for m in MODES if m[1]], ids=mode_id)
def test_dynamic_weights_are_per_sample(mode: tuple[str, bool, str]) -> None:
    """In eval mode a sample's output does not depend on the rest of the batch."""
    m = make(*mode).eval()
    randomize(m)
    with torch.no_grad():
        m.generator.apply(_random_bn_stats)
    x = randn(N, C, H, W, seed=3)
    with torch.no_grad():
        y = m(x)
        for i in range(N):
            assert_close(y[i : i + 1], m(x[i : i + 1]), what=f"sample {i} alone vs in batch")
        # a different sample gives different weights: swapping samples permutes outputs
        assert_close(m(x.flip(0)), y.flip(0), what="batch permutation")


def _random_bn_stats(mod: nn.Module) -> None:
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        gen = torch.Generator().manual_seed(5)
        mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=gen) * 0.1)
        mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=gen) + 0.5)


@pytest.mark.parametrize("share", ["channel", "none", "spatial"])
@pytest.mark.parametrize(
    ("size", "dilation"), [((7, 9), 1), ((8, 10), 1), ((5, 5), 1), ((9, 7), 2)]
)
def test_dynamic_stride2(share: str, size: tuple[int, int], dilation: int) -> None:
    """Stride 2: weights generated at the output positions; output halves the size."""
    m = make(share, True, "sliding", stride=2, dilation=dilation)
    randomize(m)
    x = randn(N, C, *size, seed=4)
    pad = dilation * (K - 1) // 2
    ho, wo = ((s + 2 * pad - dilation * (K - 1) - 1) // 2 + 1 for s in size)
    seen: list[torch.Tensor] = []
    handle = m.generator.register_forward_hook(lambda mod, inp, out: seen.append(out))
    try:
        y = m(x)
    finally:
        handle.remove()
    assert y.shape == (N, C, ho, wo)
    assert torch.isfinite(y).all()
    assert len(seen) == 1, "the generator submodule was not called exactly once"
    out = seen[0]
    if share == "spatial":
        assert out.numel() == N * C * K * K, f"generator output {tuple(out.shape)}"
    else:
        gc = G if share == "channel" else C
        assert tuple(out.shape[-2:]) == (ho, wo), (
            f"per-position weights generated at {tuple(out.shape[-2:])}, not at the "
            f"output positions {(ho, wo)}"
        )
        assert out.numel() == N * gc * K * K * ho * wo, f"generator output {tuple(out.shape)}"
    m.eval()
    with torch.no_grad():
        assert_close(m(x)[1:2], m(x[1:2]), what="stride-2 sample alone vs in batch")
    if share == "spatial":
        return
    # the weight of output (o_h, o_w) comes from the window centre (2 o_h, 2 o_w) only
    for (r, c), changed in (((2, 4), (1, 2)), ((1, 3), None), ((4, 1), None)):
        x2 = x.clone()
        x2[:, :, r, c] += 1.0 + x2[:, :, r, c].abs()
        seen.clear()
        handle = m.generator.register_forward_hook(lambda mod, inp, out: seen.append(out))
        try:
            with torch.no_grad():
                m(x)
                m(x2)
        finally:
            handle.remove()
        diff = (seen[1] - seen[0]).abs().flatten(0, -3).amax(0) > 0
        expected = torch.zeros(ho, wo, dtype=torch.bool)
        if changed is not None:
            expected[changed] = True
        assert torch.equal(diff, expected), (
            f"perturbing input ({r}, {c}) changed the weights at "
            f"{diff.nonzero().tolist()}, expected {expected.nonzero().tolist()}"
        )


# --------------------------------------------------------------------------- #
# nn.Conv2d equivalence (static spatial)
# --------------------------------------------------------------------------- #


@st.composite
def conv_configs(draw: st.DrawFn) -> dict[str, Any]:
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    choices = ["int", "pair", "valid"] + (["same"] if stride == (1, 1) else [])
    kind = draw(st.sampled_from(choices))
    if kind == "int":
        padding: Any = draw(st.integers(0, 2))
    elif kind == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 3)))
    else:
        padding = kind
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 11))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 11))
    return {
        "kernel_size": (kh, kw),
        "stride": stride,
        "dilation": dilation,
        "padding": padding,
        "bias": draw(st.booleans()),
        "size": (h, w),
        "channels": draw(st.sampled_from([1, 3, 5])),
    }


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(cfg=conv_configs())
def test_static_spatial_equals_conv2d(cfg: dict[str, Any]) -> None:
    """state_dict both ways and from_conv2d give the outputs of the depth-wise nn.Conv2d."""
    c = cfg["channels"]
    args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "dilation", "bias")}
    torch.manual_seed(0)
    conv = nn.Conv2d(c, c, groups=c, **args)
    randomize(conv, seed=1)
    x = randn(2, c, *cfg["size"], seed=2)
    expected = conv(x)

    m = LocalConn2d(c, **args)
    m.load_state_dict(conv.state_dict())
    assert_close(m(x), expected, what=f"load_state_dict from conv {cfg}")

    m2 = LocalConn2d.from_conv2d(conv)
    assert isinstance(m2, LocalConn2d)
    assert_close(m2(x), expected, what=f"from_conv2d {cfg}")
    assert (m2.bias is None) == (not cfg["bias"])
    back = m2.to_conv2d()  # and back: nn.Conv2d's own arguments and outputs
    assert all(getattr(back, a) == getattr(conv, a) for a in
               ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                "groups", "padding_mode"))
    assert_close(back(x), expected, what=f"to_conv2d {cfg}")
    assert (m2.in_channels, m2.out_channels) == (c, c)

    randomize(m, seed=3)
    conv2 = nn.Conv2d(c, c, groups=c, **args)
    conv2.load_state_dict(m.state_dict())
    assert_close(m(x), conv2(x), what=f"conv loaded from module {cfg}")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel", [(2, 2), (4, 3), (3, 4), (2, 5), (1, 1)])
@pytest.mark.parametrize("dilation", [1, (2, 1)])
def test_padding_strings_equal_conv2d(padding: str, kernel: tuple[int, int], dilation: Any) -> None:
    """'same' (extra row/column at the end for even kernels) and 'valid', as nn.Conv2d."""
    conv = nn.Conv2d(C, C, kernel, padding=padding, dilation=dilation, groups=C)
    randomize(conv, seed=4)
    x = randn(2, C, 7, 8, seed=5)
    m = LocalConn2d.from_conv2d(conv)
    assert_close(m(x), conv(x), what=f"from_conv2d padding={padding!r} kernel={kernel}")
    m2 = LocalConn2d(C, kernel, padding=padding, dilation=dilation)
    m2.load_state_dict(conv.state_dict())
    assert_close(m2(x), conv(x), what=f"padding={padding!r} kernel={kernel}")


def test_state_dict_keys() -> None:
    """A static spatial module stores exactly nn.Conv2d's keys and shapes."""
    for bias in (True, False):
        m = LocalConn2d(C, (3, 5), bias=bias)
        conv = nn.Conv2d(C, C, (3, 5), groups=C, bias=bias)
        sd, sd_conv = m.state_dict(), conv.state_dict()
        assert sorted(sd) == sorted(sd_conv)
        assert all(sd[k].shape == sd_conv[k].shape for k in sd)


@pytest.mark.parametrize(
    ("kernel", "dilation", "stride"),
    [(3, 1, 1), ((3, 5), (1, 2), 1), (5, 2, 2), ((1, 3), 1, (2, 1)), (4, 1, 1)],
)
def test_default_padding(kernel: Any, dilation: Any, stride: Any) -> None:
    """padding=None is dilation * (K - 1) // 2 per axis."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    pad = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
    conv = nn.Conv2d(C, C, kernel, stride, pad, dilation, groups=C)
    randomize(conv)
    m = LocalConn2d(C, kernel, stride=stride, dilation=dilation)
    m.load_state_dict(conv.state_dict())
    x = randn(2, C, 11, 12, seed=6)
    assert_close(m(x), conv(x), what="default padding")
    if stride == 1 and kh % 2 == 1 and kw % 2 == 1:
        assert m(x).shape == x.shape


def test_from_conv2d_keeps_dtype() -> None:
    """from_conv2d of a float64 conv computes in float64, exactly like the conv."""
    conv = nn.Conv2d(4, 4, 3, padding="same", groups=4).double()
    randomize(conv)
    m = LocalConn2d.from_conv2d(conv)
    x = randn(2, 4, 7, 6, seed=3, dtype=torch.float64)
    y = m(x)
    assert y.dtype == torch.float64
    assert_close(y, conv(x), what="float64 from_conv2d")


@pytest.mark.parametrize(
    ("conv", "match"),
    [
        (nn.Conv2d(4, 4, 3), r"(?i)group|depth"),
        (nn.Conv2d(4, 8, 3, groups=4), r"(?i)group|depth|out_channels|channel"),
        (nn.Conv2d(4, 4, 3, groups=2), r"(?i)group|depth"),
    ],
    ids=["groups1", "multiplier2", "groups2"],
)
def test_from_conv2d_refuses(conv: nn.Conv2d, match: str) -> None:
    """Only depth-wise convolutions convert."""
    with pytest.raises(ValueError, match=match):
        LocalConn2d.from_conv2d(conv)


def test_from_conv2d_refuses_non_conv() -> None:
    """A module that is not an nn.Conv2d is a TypeError naming conv."""
    with pytest.raises(TypeError, match="conv"):
        LocalConn2d.from_conv2d(nn.Conv1d(4, 4, 3, groups=4))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# forward(x, weight=W), repr, gradients, errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "mode",
    [
        ("spatial", False, "sliding"),
        ("channel", True, "sliding"),
        ("none", False, "neighborhood"),
        ("channel", False, "block"),
        ("spatial", True, "block"),
    ],
    ids=mode_id,
)
@pytest.mark.parametrize("wshape", [(N, G), (1, C), (N, 1)], ids=["NG", "1C", "N1"])
def test_forward_with_given_weight(mode: tuple[str, bool, str], wshape: tuple[int, int]) -> None:
    """m(x, weight=W) == local_conn2d(x, W, m.bias, ...), and W gets the gradient."""
    m = make(*mode)
    randomize(m)
    x = randn(N, C, H, W, seed=7)
    w = randn(wshape[0], wshape[1], K, K, H, W, seed=8).requires_grad_()
    y = m(x, weight=w)
    expected = localconn.local_conn2d(x, w.detach(), m.bias.detach(), **functional_kwargs(mode[2]))
    assert_close(y, expected, what="forward with given weight")
    y.backward(randn(*y.shape, seed=9))
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_forward_with_given_weight_stride2() -> None:
    """A given weight overrides the module's at stride 2 too (weight sized like the output)."""
    m = LocalConn2d(C, K, stride=2, dilation=2)
    randomize(m)
    x = randn(N, C, 9, 8, seed=10)
    w = randn(N, G, K, K, 5, 4, seed=11)
    assert_close(
        m(x, weight=w),
        localconn.local_conn2d(x, w, m.bias, stride=2, padding=2, dilation=2),
        what="stride-2 given weight",
    )


@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_extra_repr(mode: tuple[str, bool, str]) -> None:
    """repr shows share, dynamic and window (at least wherever they are not the default)."""
    share, dynamic, window = mode
    text = repr(make(share, dynamic, window))
    if share != "spatial":
        assert re.search(rf"share=['\"]?{share}\b", text), text
    if dynamic:
        assert re.search(r"dynamic=True\b", text), text
    if window != "sliding":
        assert re.search(rf"window=['\"]?{window}\b", text), text
    shown = [k for k in ("share=", "dynamic=", "window=") if k in text]
    assert shown, f"none of share/dynamic/window in {text}"


@pytest.mark.parametrize("mode", MODES, ids=mode_id)
def test_parameters_receive_gradients(mode: tuple[str, bool, str]) -> None:
    """Backward fills every parameter's and the input's grad, finite and non-zero."""
    m = make(*mode)
    randomize(m)
    x = randn(N, C, H, W, seed=12).requires_grad_()
    y = m(x)
    y.backward(randn(*y.shape, seed=13))
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    params = dict(m.named_parameters())
    assert "bias" in params
    assert ("generator" in " ".join(params)) == mode[1]
    for name, p in params.items():
        assert p.grad is not None, f"{name} has no grad"
        assert torch.isfinite(p.grad).all(), f"{name} grad not finite"
        assert p.grad.abs().max() > 0, f"{name} grad is zero"


def test_share_channel_needs_groups() -> None:
    """share='channel' without groups, or with a non-divisor, raises naming groups."""
    for dynamic in (False, True):
        with pytest.raises(ValueError, match="groups"):
            LocalConn2d(C, K, share="channel", dynamic=dynamic, input_size=(H, W))
        with pytest.raises(ValueError, match="groups"):
            LocalConn2d(C, K, share="channel", dynamic=dynamic, groups=3, input_size=(H, W))


@pytest.mark.parametrize("share", ["channel", "none"])
def test_static_unshared_needs_input_size(share: str) -> None:
    """Static share='channel'/'none' without input_size raises naming input_size."""
    with pytest.raises(ValueError, match="input_size"):
        LocalConn2d(C, K, share=share, groups=G if share == "channel" else None)


def test_static_unshared_rejects_other_input_size() -> None:
    """A static per-position module refuses an input of another size."""
    m = LocalConn2d(C, K, share="none", input_size=(H, W))
    with pytest.raises(ValueError, match=r"input_size|weight|\bx\b|input"):
        m(randn(N, C, H + 1, W, seed=14))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"share": "position"}, "share"),
        ({"window": "global"}, "window"),
        ({"stride": 0}, "stride"),
        ({"backend": "opencl"}, "backend"),
        ({"dynamic": True, "reduction": 0}, "reduction"),
    ],
    ids=["share", "window", "stride", "backend", "reduction"],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], match: str) -> None:
    """Bad constructor arguments raise ValueError naming the argument (at build or call)."""
    with pytest.raises(ValueError, match=match):
        m = LocalConn2d(C, K, **kwargs)
        m(randn(N, C, H, W, seed=15))


def test_module_float64_and_deepcopy() -> None:
    """.double() converts every mode; a deep copy computes the same."""
    for mode in MODES[:6]:
        m = make(*mode).double().eval()
        randomize(m)
        x = randn(2, C, H, W, seed=16, dtype=torch.float64)
        y = m(x)
        assert y.dtype == torch.float64
        assert_close(copy.deepcopy(m)(x), y, what=f"deepcopy {mode_id(mode)}")


# --------------------------------------------------------------------------- #
# nn.Conv2d's conventions: padding_mode, unbatched input, device= / dtype=
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"),
                         [(3, 1, "same", 1), (5, 2, (2, 1), 1), ((3, 5), 1, (1, 3), (2, 1))],
                         ids=["same", "stride2-asym", "rect-dilated"])
def test_padding_mode_matches_conv2d(mode: str, kernel: Any, stride: Any, padding: Any,
                                     dilation: Any) -> None:
    """Each padding mode equals nn.Conv2d(groups=C, padding_mode=mode) in float64, on an odd
    image (also when converted with from_conv2d)."""
    conv = nn.Conv2d(6, 6, kernel, stride, padding, dilation, groups=6,
                     padding_mode=mode).double()
    randomize(conv, seed=5)
    m = LocalConn2d(6, kernel, stride, padding, dilation, padding_mode=mode, dtype=torch.float64)
    m.load_state_dict(conv.state_dict())
    x = randn(2, 6, 11, 9, seed=6, dtype=torch.float64)
    assert_close(m(x), conv(x), what=f"padding_mode={mode}")
    assert_close(LocalConn2d.from_conv2d(conv)(x), conv(x), what=f"from_conv2d {mode}")
    assert LocalConn2d.from_conv2d(conv).padding_mode == mode
    back = m.to_conv2d()
    assert back.padding_mode == mode and back.weight.dtype == torch.float64
    assert_close(back(x), conv(x), what=f"to_conv2d {mode}")


@pytest.mark.parametrize("kwargs", [{"dynamic": True}, {"window": "block"},
                                    {"share": "channel", "groups": 2, "input_size": (8, 8)}])
def test_to_conv2d_refuses_what_is_no_convolution(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="to_conv2d"):
        LocalConn2d(4, 3, **kwargs).to_conv2d()


def test_attention_reset_parameters() -> None:
    """reset_parameters draws every parameter again as the constructor does (qkv and proj
    as nn.Conv2d, the bias table trunc_normal(std=0.02)): the same values from the same
    seed, whatever the parameters held."""
    from localconn import LocalAttention2d

    a, b = LocalAttention2d(32, 4, 7), LocalAttention2d(32, 4, 7)
    with torch.no_grad():
        for p in a.parameters():
            p.fill_(float("nan"))
    for m in (a, b):
        torch.manual_seed(3)
        m.reset_parameters()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q) and p.isfinite().all(), name
    table = a.relative_position_bias_table
    assert 0.01 < table.std() < 0.03  # (timm's trunc_normal_ cuts at +-2, not at 2 std)
    bound = 1 / 32 ** 0.5  # nn.Conv2d's kaiming_uniform(a=sqrt(5)) on fan_in 32
    assert a.qkv.weight.abs().max() <= bound and a.qkv.weight.std() > bound / 3


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_padding_mode_dynamic(mode: str) -> None:
    """A dynamic per-position layer pads only the conv's input: its generator reads the
    unpadded image at the window centres, and the layer equals local_conn2d of the padded
    image without padding, with the weight the module generates."""
    m = randomize(LocalConn2d(8, 3, share="channel", groups=2, dynamic=True, padding_mode=mode),
                  seed=7).double().eval()
    x = randn(2, 8, 9, 10, seed=8, dtype=torch.float64)
    w = m.make_weight(x)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode=mode)
    want = localconn.local_conn2d(padded, w, m.bias, padding=0, backend="reference")
    assert_close(m(x), want, what=f"dynamic {mode}")
    assert f"padding_mode={mode!r}" in repr(m)


@pytest.mark.parametrize("kw", [{}, {"dynamic": True}, {"share": "channel", "groups": 2,
                                                        "dynamic": True, "stride": 2}],
                         ids=["static", "dynamic", "involution"])
def test_unbatched_input(kw: dict) -> None:
    """(C, H, W) gives the (C, H', W') of the same image as a batch of one, like nn.Conv2d."""
    m = randomize(LocalConn2d(8, 3, **kw), seed=9).double().eval()
    x = randn(3, 8, 9, 7, seed=10, dtype=torch.float64)
    y = m(x[1])
    assert y.dim() == 3
    assert_close(y, m(x[1:2])[0], what="unbatched")


def test_factory_kwargs() -> None:
    """device= / dtype= make the parameters (and generators) there: nothing allocated on the
    meta device, float64 everywhere for dtype=torch.float64."""
    m = LocalConn2d(16, 7, device="meta", dtype=torch.float16)
    assert m.weight.is_meta and m.weight.dtype == torch.float16 and m.bias.is_meta
    m = LocalConn2d(8, 3, share="channel", groups=2, dynamic=True, dtype=torch.float64)
    assert {p.dtype for p in m.parameters()} == {torch.float64}
    m = LocalConn2d(8, 3, share="none", input_size=(5, 6), dtype=torch.float64, bias=False)
    assert m.weight.shape == (1, 8, 3, 3, 5, 6) and m.weight.dtype == torch.float64
