"""localconn.flops: formulas for the custom ops, and the models against their published sizes.

The formulas are checked against PyTorch's own counts of equivalent
``F.conv2d`` calls (an independent count), forward and backward; the models
are counted on the meta device and compared with the published figures.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import localconn
import localconn.models
from localconn import flops

#: (params, MACs at 224x224) published by Han et al. (ICLR 2022) and Liu et al. (Swin)
PUBLISHED = {
    "dwnet_tiny": (24e6, 3.8e9),
    "dynamic_dwnet_tiny": (51e6, 3.8e9),
    "dwnet_base": (74e6, 12.9e9),
    "dynamic_dwnet_base": (162e6, 13.0e9),
    "swin_tiny": (28e6, 4.5e9),
    "swin_base": (88e6, 15.4e9),
}


def _flops(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def test_formulas_are_registered_with_pytorch() -> None:
    registry = torch.utils.flop_counter.flop_registry
    for op in (torch.ops.localconn.conn2d, torch.ops.localconn.conn2d_transpose,
               torch.ops.localconn.corr2d):
        assert op in registry


@pytest.mark.parametrize("stride", [1, 2])
def test_conn2d_counts_like_a_depthwise_conv2d(stride: int) -> None:
    x, w = torch.randn(2, 8, 10, 12), torch.randn(8, 1, 3, 3)
    ours = _flops(lambda: localconn.local_conn2d(x, w.view(1, 8, 3, 3, 1, 1), stride=stride,
                                                 padding=1))
    theirs = _flops(lambda: F.conv2d(x, w, stride=stride, padding=1, groups=8))
    Ho, Wo = (10 + 2 - 3) // stride + 1, (12 + 2 - 3) // stride + 1
    assert ours == theirs == 2 * 2 * 8 * Ho * Wo * 9


def test_backward_counts_like_conv2d() -> None:
    """conn2d's backward is conn2d_transpose + corr2d: the count of conv2d's backward.

    One channel, so the depth-wise conv is a plain conv (PyTorch's formula for the
    weight gradient of a *grouped* conv counts it as if ungrouped).
    """
    x = torch.randn(2, 1, 10, 10, requires_grad=True)
    w = torch.randn(1, 1, 5, 5, requires_grad=True)

    def ours() -> None:
        localconn.local_conn2d(x, w.view(1, 1, 5, 5, 1, 1), padding=2).sum().backward()

    def theirs() -> None:
        F.conv2d(x, w, padding=2).sum().backward()

    assert _flops(ours) == _flops(theirs) == 3 * 2 * (2 * 10 * 10 * 25)


def test_corr2d_and_transpose_formulas() -> None:
    a, b = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    shape = (2, 4, 3, 3, 6, 6)
    assert _flops(lambda: localconn.local_corr2d(a, b, shape, window="neighborhood")) == (
        2 * a.numel() * 9
    )
    w = torch.randn(shape)
    got = _flops(lambda: localconn.local_conn2d_transpose(a, w, (6, 6), window="neighborhood"))
    assert got == 2 * a.numel() * 9


def test_count_is_macs_and_matches_nn_conv2d() -> None:
    conv = nn.Conv2d(16, 16, 7, padding=3, groups=16)
    m = localconn.LocalConn2d.from_conv2d(conv)
    size = (2, 16, 14, 14)
    assert flops.count(m, size) == flops.count(conv, size) == (16 * 49 + 16, 2 * 16 * 14 * 14 * 49)


def test_attention_counts() -> None:
    """qkv and output projections plus q.k (corr2d) and A.v (conn2d), K*K taps each."""
    N, C, H, W, K = 1, 16, 8, 8, 3
    attn = localconn.LocalAttention2d(C, 2, K)
    proj = N * H * W * (3 * C * C + C * C)
    assert flops.count_macs(attn, (N, C, H, W)) == proj + 2 * N * C * H * W * K * K


def test_meta_count_equals_a_real_run_and_leaves_the_model_alone() -> None:
    model = localconn.models.create("dynamic_dwnet_tiny", img_size=32, embed_dim=8,
                                    depths=(1, 1, 1, 1), num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    meta = flops.count_macs(model, (1, 3, 32, 32))
    real = flops.count_macs(model, (1, 3, 32, 32), device=None)
    assert meta == real > 0
    assert model.training
    for k, v in model.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, before[k]), k


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_params_and_macs_within_3_percent(name: str) -> None:
    params, macs = localconn.models.complexity(name)
    pub_params, pub_macs = PUBLISHED[name]
    assert localconn.models.info(name).published == PUBLISHED[name]
    assert abs(params / pub_params - 1) <= 0.03, f"{name}: {params / 1e6:.2f}M params"
    assert abs(macs / pub_macs - 1) <= 0.03, f"{name}: {macs / 1e9:.3f}G MACs"


def test_nat_tiny_has_the_size_of_swin_tiny() -> None:
    """Same skeleton and bias tables; a neighborhood window has as many taps as a block."""
    assert localconn.models.complexity("nat_tiny") == localconn.models.complexity("swin_tiny")


@pytest.mark.parametrize("size", ["tiny", "base"])
def test_idynamic_adds_exactly_its_generators(size: str) -> None:
    """Inhomogeneous minus static DWNet = per-position generators - static filters and biases.

    Per block of width C at H x W (G = 32 groups, K = 7, r = 4): the generator has
    C*C/r + 2*C/r (BatchNorm) + (C/r)*G*K*K + G*K*K parameters and H*W*(C*C/r +
    (C/r)*G*K*K) MACs; the static layer has C*K*K + C parameters; the aggregation
    costs the same in both.
    """
    static = localconn.models.complexity(f"dwnet_{size}")
    inhom = localconn.models.complexity(f"idynamic_dwnet_{size}")
    cfg = localconn.models.info(f"dwnet_{size}").defaults
    G, KK, r = 32, 49, 4
    d_params = d_macs = 0
    res, C = 224 // 4, cfg["embed_dim"]
    for depth in cfg["depths"]:
        h = C // r
        d_params += depth * (C * h + 2 * h + h * G * KK + G * KK - (C * KK + C))
        d_macs += depth * res * res * (C * h + h * G * KK)
        res, C = res // 2, C * 2
    assert inhom.params - static.params == d_params
    assert inhom.macs - static.macs == d_macs
    assert 1.0 < inhom.params / static.params < 1.15
    assert 1.0 < inhom.macs / static.macs < 1.25
