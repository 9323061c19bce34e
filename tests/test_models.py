"""localconn.models: the DWNet family and the local-attention models.

The strongest check is the drop-in one: a DWNet on LocalConn2d and the same
DWNet on the layers the original code used (``layers="torch"``: nn.Conv2d
depth-wise, batch-folded grouped conv, F.unfold) load each other's weights
and compute the same outputs and gradients. Everything runs on tiny
configurations (64x64 images, one block per stage, widths 16-128).
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest
import torch
from random_data import randn, randomize
from tolerances import assert_close
from torch import nn

import localconn
import localconn.models
from localconn.models import blocks, layers, skeleton, timm_registry

NAMES = [
    "dwnet_tiny", "dwnet_base", "dynamic_dwnet_tiny", "dynamic_dwnet_base",
    "idynamic_dwnet_tiny", "idynamic_dwnet_base", "swin_tiny", "swin_base", "nat_tiny",
]
DWNETS = [n for n in NAMES if "dwnet" in n]
#: one per layer kind (in the tiny configuration "_base" builds the same network as "_tiny")
KINDS = ["dwnet_tiny", "dynamic_dwnet_tiny", "idynamic_dwnet_tiny"]
TINY = {"img_size": 64, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_classes": 10,
        "drop_path_rate": 0.0}


def tiny_kwargs(name: str) -> dict:
    """``create()`` arguments of a tiny configuration of ``name``."""
    kw = dict(TINY)
    if name.startswith("idynamic"):
        kw["groups"] = 4
    if name.startswith(("swin", "nat")):
        kw.update(num_heads=(1, 2, 2, 4), window_size=4, depths=(1, 2, 1, 1))
    return kw


def test_names() -> None:
    assert localconn.models.names() == NAMES


def test_unknown_name_and_argument() -> None:
    with pytest.raises(ValueError, match="known: dwnet_tiny"):
        localconn.models.create("resnet50")
    with pytest.raises(TypeError, match="window_size"):
        localconn.models.create("dwnet_tiny", window_size=7)
    with pytest.raises(ValueError, match="localconn only"):
        localconn.models.create("swin_tiny", layers="torch")
    with pytest.raises(ValueError, match="divisible"):
        localconn.models.create("dwnet_tiny", img_size=100)
    with pytest.raises(ValueError, match="one entry per stage"):
        localconn.models.create("swin_tiny", num_heads=(3, 6))


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_tiny(name: str) -> None:
    torch.manual_seed(0)
    model = localconn.models.create(name, **tiny_kwargs(name))
    y = model(randn(2, 3, 64, 64))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", DWNETS)
def test_layers_are_localconn(name: str) -> None:
    """Every spatial layer is a LocalConn2d of the paper's kind (7x7, 32 groups)."""
    with torch.device("meta"):
        model = localconn.models.create(name)
    found = [m for m in model.modules() if isinstance(m, localconn.LocalConn2d)]
    assert len(found) == sum(model.depths)
    for m in found:
        assert m.kernel_size == (7, 7)
        assert m.dynamic == (not name.startswith("dwnet"))
        if name.startswith("idynamic"):
            assert (m.share, m.groups, m.bias) == ("channel", 32, None)
        else:
            assert m.share == "spatial" and m.bias is not None


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_localconn_equals_original_layers_float64(name: str, train: bool) -> None:
    """Same weights -> same outputs and gradients as the original code's layers."""
    ours = localconn.models.create(name, **tiny_kwargs(name)).double()
    theirs = localconn.models.create(name, layers="torch", **tiny_kwargs(name)).double()
    randomize(ours, seed=1)
    theirs.load_state_dict(ours.state_dict())  # strict: the same parameter names and shapes
    ours.train(train), theirs.train(train)
    x = randn(3, 3, 64, 64, seed=2, dtype=torch.float64)
    y_ours, y_theirs = ours(x), theirs(x)
    assert_close(y_ours, y_theirs, what=f"{name} output", scale=y_theirs.abs().max().item())
    y_ours.square().sum().backward()
    y_theirs.square().sum().backward()
    grads = dict(theirs.named_parameters())
    scale = max(p.grad.abs().max().item() for p in grads.values())
    for pname, p in ours.named_parameters():
        assert_close(p.grad, grads[pname].grad, what=f"{name} grad {pname}", scale=scale)


@pytest.mark.parametrize("name", KINDS)
def test_localconn_equals_original_layers_float32_channels_last(name: str) -> None:
    ours = localconn.models.create(name, **tiny_kwargs(name)).eval()
    theirs = localconn.models.create(name, layers="torch", **tiny_kwargs(name)).eval()
    randomize(ours, seed=3)
    theirs.load_state_dict(ours.state_dict())
    x = randn(2, 3, 64, 64, seed=4)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
        ours.to(memory_format=torch.channels_last)
        got_cl = ours(x.contiguous(memory_format=torch.channels_last))
    scale = expected.abs().max().item()
    assert_close(got, expected, what=f"{name} output", scale=scale)
    assert_close(got_cl, expected, what=f"{name} channels_last output", scale=scale)


def test_swin_windows_and_shifts() -> None:
    """Swin's rule at 224: window 7, odd blocks shifted by 3, the 7x7 stage unshifted."""
    with torch.device("meta"):
        model = localconn.models.create("swin_tiny")
    for stage, layer in enumerate(model.layers):
        for i, block in enumerate(layer.blocks):
            attn = block.attn
            assert (attn.window, attn.kernel_size) == ("block", (7, 7))
            assert attn.num_heads == (3, 6, 12, 24)[stage]
            shifted = i % 2 == 1 and stage < 3
            assert attn.shift == ((3, 3) if shifted else (0, 0)), (stage, i)


def test_nat_windows() -> None:
    with torch.device("meta"):
        model = localconn.models.create("nat_tiny")
    attns = [m for m in model.modules() if isinstance(m, localconn.LocalAttention2d)]
    assert len(attns) == 12
    assert all(a.window == "neighborhood" and a.kernel_size == (7, 7) for a in attns)


def test_stochastic_depth_rates() -> None:
    with torch.device("meta"):
        model = localconn.models.create("dwnet_base")
    rates = [b.drop_path.p for layer in model.layers for b in layer.blocks]
    assert len(rates) == 24 and rates[0] == 0.0 and rates[-1] == pytest.approx(0.5)
    assert all(b > a for a, b in zip(rates, rates[1:]))


def test_drop_path() -> None:
    x = torch.ones(1000, 4)
    dp = layers.DropPath(0.25)
    y = dp(x)
    values = set(y[:, 0].tolist())
    assert values == {0.0, torch.tensor(1 / 0.75).item()}
    assert (y == y[:, :1]).all()  # the whole sample is kept or dropped
    assert torch.equal(dp.eval()(x), x)


def test_layer_norm_2d_and_patch_merging_match_swin_tokens() -> None:
    """LayerNorm2d and PatchMerging on NCHW equal Swin's code on (B, H*W, C) tokens."""
    x = randn(2, 8, 6, 6, seed=5)
    tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    ln = randomize(layers.LayerNorm2d(8))
    ref = nn.LayerNorm(8)
    ref.load_state_dict(ln.state_dict())
    assert_close(ln(x), ref(tokens).permute(0, 3, 1, 2))

    merge = randomize(skeleton.PatchMerging(8))
    x0, x1 = tokens[:, 0::2, 0::2], tokens[:, 1::2, 0::2]
    x2, x3 = tokens[:, 0::2, 1::2], tokens[:, 1::2, 1::2]
    swin = merge.reduction(merge.norm(torch.cat([x0, x1, x2, x3], -1)))
    assert_close(merge(x), swin.permute(0, 3, 1, 2))


def test_head_interface() -> None:
    model = localconn.models.create("dwnet_tiny", **tiny_kwargs("dwnet_tiny"))
    feats = model.forward_features(randn(2, 3, 64, 64))
    assert feats.shape == (2, 128, 2, 2)
    model.reset_classifier(0)
    assert model(randn(2, 3, 64, 64)).shape == (2, 128)
    assert isinstance(model.get_classifier(), nn.Identity)


def test_backend_is_passed_to_every_layer() -> None:
    with torch.device("meta"):
        model = localconn.models.create("swin_tiny", backend="reference")
        dw = localconn.models.create("idynamic_dwnet_tiny", backend="reference")
    for m in (*model.modules(), *dw.modules()):
        if isinstance(m, (localconn.LocalConn2d, localconn.LocalAttention2d)):
            assert m.backend == "reference"


def test_spatial_layer_kinds() -> None:
    with pytest.raises(ValueError, match="layer kind"):
        blocks.spatial_layer("involution", 16)
    with pytest.raises(ValueError, match="layers must be"):
        blocks.spatial_layer("static", 16, layers="cuda")
    with pytest.raises(ValueError, match="divisor"):
        localconn.models.create("idynamic_dwnet_tiny", embed_dim=16)  # 32 groups, 16 channels


# ------------------------------------------------------------------- timm


def _fake_timm(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A stand-in ``timm`` package whose ``register_model`` records the entry points."""
    registry: dict = {}
    timm = types.ModuleType("timm")
    timm.__spec__ = importlib.machinery.ModuleSpec("timm", None)
    models = types.ModuleType("timm.models")

    def register_model(fn):
        registry[fn.__name__] = fn
        return fn

    def create_model(name, pretrained=False, **kwargs):  # timm's call convention
        return registry[name](pretrained=pretrained, pretrained_cfg=None,
                              pretrained_cfg_overlay=None, cache_dir=None, **kwargs)

    models.register_model = register_model
    timm.models, timm.create_model = models, create_model
    monkeypatch.setitem(sys.modules, "timm", timm)
    monkeypatch.setitem(sys.modules, "timm.models", models)
    return registry


def test_timm_registration_with_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _fake_timm(monkeypatch)
    assert timm_registry.register_if_installed()
    assert sorted(registry) == sorted("localconn_" + n for n in NAMES)
    timm = sys.modules["timm"]
    model = timm.create_model("localconn_dwnet_tiny", **tiny_kwargs("dwnet_tiny"))
    assert isinstance(model, localconn.models.LocalNet)
    assert model.pretrained_cfg["input_size"] == (3, 64, 64)
    assert model(randn(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("localconn_dwnet_tiny", pretrained=True)


def test_broken_timm_warns_and_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_timm(monkeypatch)
    monkeypatch.setitem(sys.modules, "timm.models", None)  # `from timm.models import` fails
    with pytest.warns(RuntimeWarning, match="could not be registered"):
        assert not timm_registry.register_if_installed()


def test_real_timm() -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("localconn_dynamic_dwnet_tiny", **tiny_kwargs("dwnet_tiny"))
    assert isinstance(model, localconn.models.LocalNet)
    assert "localconn_swin_tiny" in timm.list_models("localconn_*")


# --------------------------------------------------------------------------- #
# timm's model interface: intermediates, checkpointing, parameter groups, no weight decay
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ["dwnet_tiny", "swin_tiny", "nat_tiny"])
def test_forward_intermediates(name: str) -> None:
    """The stages' maps before their merging equal what hooks on each stage's last block see
    (feature_info's modules), the final output is forward_features, and indices,
    output_fmt, norm and stop_early select as timm's API says."""
    m = randomize(localconn.models.create(name, **tiny_kwargs(name)), seed=1).double().eval()
    x = randn(2, 3, 64, 64, seed=2, dtype=torch.float64)
    seen: list[torch.Tensor] = []
    named = dict(m.named_modules())
    hooks = [named[f["module"]].register_forward_hook(lambda mod, i, o: seen.append(o))
             for f in m.feature_info]
    final, maps = m.forward_intermediates(x)
    for h in hooks:
        h.remove()
    assert len(maps) == 4 and len(seen) == 4
    for f, s, info in zip(maps, seen, m.feature_info):
        assert_close(f, s, what=f"{name} intermediate")
        assert f.shape[1] == info["num_chs"] and 64 // f.shape[-1] == info["reduction"]
    assert_close(final, m.forward_features(x), what=f"{name} final")
    last2 = m.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [t.shape for t in last2] == [t.shape for t in maps[2:]]
    nhwc = m.forward_intermediates(x, indices=[0, -1], output_fmt="NHWC", norm=True,
                                   intermediates_only=True, stop_early=True)
    assert_close(nhwc[0], maps[0].permute(0, 2, 3, 1), what="NHWC")
    assert_close(nhwc[1], m.norm(maps[3]).permute(0, 2, 3, 1), what="norm on the last")
    with pytest.raises(ValueError, match="indices"):
        m.forward_intermediates(x, indices=[4])
    with pytest.raises(ValueError, match="output_fmt"):
        m.forward_intermediates(x, output_fmt="NDHWC")
    taken = m.prune_intermediate_layers(indices=[1])
    assert taken == [1] and len(m.layers) == 2 and isinstance(m.head, nn.Identity)


@pytest.mark.parametrize("name", KINDS + ["swin_tiny"])
def test_grad_checkpointing_same_gradients(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """set_grad_checkpointing recomputes every block in the backward pass (each block runs
    through torch.utils.checkpoint) and leaves outputs and gradients unchanged."""
    kw = dict(tiny_kwargs(name), drop_path_rate=0.0)
    m = randomize(localconn.models.create(name, **kw), seed=3).double().train()
    x = randn(2, 3, 64, 64, seed=4, dtype=torch.float64)

    def grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        m.zero_grad()
        y = m(x)
        y.square().sum().backward()
        return y.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]

    y0, g0 = grads()
    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    m.set_grad_checkpointing(True)
    y1, g1 = grads()
    assert len(calls) == sum(len(layer.blocks) for layer in m.layers)
    assert_close(y1, y0, what="checkpointed output")
    assert len(g1) == len(g0)
    for a, b in zip(g1, g0):
        assert_close(a, b, what="checkpointed gradient")


def test_no_weight_decay_and_group_matcher() -> None:
    """no_weight_decay names exactly the relative position tables (Swin's recipe; 1-D
    parameters are left to timm's rule); group_matcher's patterns cover every parameter but
    the head, stage by stage and block by block."""
    import re

    swin = localconn.models.create("swin_tiny", **tiny_kwargs("swin_tiny"))
    tables = {n for n, _ in swin.named_parameters() if "relative_position_bias_table" in n}
    assert tables and swin.no_weight_decay() == tables
    dw = localconn.models.create("dwnet_tiny", **tiny_kwargs("dwnet_tiny"))
    assert dw.no_weight_decay() == set()
    for m in (swin, dw):
        for coarse in (True, False):
            g = m.group_matcher(coarse)
            patterns = [g["stem"]] + [p for p, _ in g["blocks"]]
            for n, _ in m.named_parameters():
                if not n.startswith("head."):
                    assert any(re.match(p, n) for p in patterns), (coarse, n)


@pytest.mark.parametrize("name", ["dwnet_tiny", "swin_tiny"])
def test_features_only(name: str) -> None:
    """timm's features_only=True through the entry point: the chosen stages' maps equal the
    full model's forward_intermediates on the same weights, with timm's feature_info."""
    kw = tiny_kwargs(name)
    full = randomize(localconn.models.create(name, **kw), seed=5).double().eval()
    net = timm_registry.entrypoint(name)(features_only=True, out_indices=(1, -1), **kw)
    net.model.load_state_dict(full.state_dict(), strict=False)  # (its head and norm dropped)
    net = net.double().eval()
    x = randn(2, 3, 64, 64, seed=6, dtype=torch.float64)
    maps = full.forward_intermediates(x, intermediates_only=True)
    got = net(x)
    assert len(got) == 2
    assert_close(got[0], maps[1], what="stage 1")
    assert_close(got[1], maps[3], what="stage 3")
    assert net.feature_info.channels() == [maps[1].shape[1], maps[3].shape[1]]
    assert net.feature_info.reduction() == [8, 32]
    nhwc = timm_registry.entrypoint(name)(features_only=True, output_fmt="NHWC", **kw)
    assert [tuple(f.shape[1:3]) for f in nhwc(x.float())] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    with pytest.raises(ValueError, match="output_fmt"):
        timm_registry.entrypoint(name)(features_only=True, output_fmt="NCDHW", **kw)


def test_swin_pads_stages_the_window_does_not_divide() -> None:
    """As timm's Swin: a stage whose resolution the window does not divide is padded to
    whole windows (pad_to_blocks), a smaller one gets one window of its size; the model runs
    on such an image size and traces."""
    kw = dict(tiny_kwargs("swin_tiny"), window_size=3)  # stages 16, 8, 4, 2
    m = randomize(localconn.models.create("swin_tiny", **kw), seed=7).eval()
    attns = [blk.attn for layer in m.layers for blk in layer.blocks]
    assert [a.pad_to_blocks for a in attns] == [True, True, True, True, False]
    assert [a.kernel_size[0] for a in attns] == [3, 3, 3, 3, 2]
    x = randn(1, 3, 64, 64, seed=8)
    with torch.no_grad():
        y = m(x)
        assert y.shape == (1, 10) and torch.isfinite(y).all()
        assert_close(torch.fx.symbolic_trace(m)(x), y, what="traced padded swin")
