"""torch.fx.symbolic_trace (and so torchvision's create_feature_extractor) of the modules,
the models and user code calling the public functions: the traced graph gives the module's
own result, and the layer's shape-dependent work is a leaf call."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
from random_data import randn, randomize
from tolerances import assert_close

import localconn
from localconn import LocalAttention2d, LocalConn2d, models


def leaf_calls(gm: torch.fx.GraphModule) -> set[str]:
    """Names of the plain functions the graph calls."""
    return {getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes
            if n.op == "call_function"}


@pytest.mark.parametrize("kw", [
    {}, {"padding_mode": "circular"}, {"dynamic": True},
    {"share": "channel", "groups": 2, "dynamic": True, "stride": 2},
    {"share": "none", "input_size": (9, 11)}, {"window": "neighborhood"},
    {"share": "channel", "groups": 4, "dynamic": True, "padding_mode": "reflect"},
], ids=["dw", "circular", "dynamic", "involution-s2", "static-none", "neighborhood",
        "involution-reflect"])
def test_local_conn2d_traces(kw: dict) -> None:
    m = randomize(LocalConn2d(8, 3, **kw), seed=1).double().eval()
    gm = torch.fx.symbolic_trace(m)
    assert "local_conn2d" in leaf_calls(gm)
    x = randn(2, 8, 9, 11, seed=2, dtype=torch.float64)
    assert_close(gm(x), m(x), what=f"traced {kw}")
    if not m.dynamic and m.share == "spatial":  # the optional weight stays optional
        w = randn(2, 8, 3, 3, 1, 1, seed=3, dtype=torch.float64)
        assert_close(gm(x, w), m(x, w), what="traced, weight given")


@pytest.mark.parametrize("kw", [
    {}, {"window": "block", "shift": (1, 1)}, {"window": "sliding"}, {"rel_pos_bias": False},
    {"dilation": 2}, {"fused": False},
    {"window": "block", "kernel_size": 5, "shift": 2, "pad_to_blocks": True},
], ids=["neighborhood", "shifted-block", "sliding", "no-rpb", "dilated", "unfused", "padded"])
def test_local_attention_traces(kw: dict) -> None:
    kw = {"kernel_size": 3, **kw}
    m = randomize(LocalAttention2d(8, 2, **kw), seed=4).double().eval()
    gm = torch.fx.symbolic_trace(m)
    assert "window_attention" in leaf_calls(gm)
    x = randn(2, 8, 12, 12, seed=5, dtype=torch.float64)
    assert_close(gm(x), m(x), what=f"traced attention {kw}")
    xc = x.contiguous(memory_format=torch.channels_last)
    assert gm(xc).is_contiguous(memory_format=torch.channels_last)


def test_local_attention_traces_dropout_in_training() -> None:
    """With attention dropout in training the map is a graph value: logits, softmax and
    aggregation are leaf calls around the traced dropout, with the module's own result under
    the same seed."""
    m = randomize(LocalAttention2d(8, 2, kernel_size=3, attn_drop=0.3), seed=6).double()
    gm = torch.fx.symbolic_trace(m.train())
    assert {"window_logits", "window_softmax", "window_aggregate"} <= leaf_calls(gm)
    x = randn(2, 8, 10, 10, seed=7, dtype=torch.float64)
    torch.manual_seed(0)
    got = gm(x)
    torch.manual_seed(0)
    assert_close(got, m(x), what="traced attention, dropout")


@pytest.mark.parametrize("name", ["dwnet_tiny", "dynamic_dwnet_tiny", "idynamic_dwnet_tiny",
                                  "swin_tiny", "nat_tiny"])
def test_models_trace(name: str) -> None:
    m = randomize(models.create(name, num_classes=5), seed=8).eval()
    gm = torch.fx.symbolic_trace(m)
    x = randn(1, 3, 224, 224, seed=9)
    with torch.no_grad():
        assert_close(gm(x), m(x), what=f"traced {name}")


class UserBlock(nn.Module):
    """User code that calls the public functions through the package."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(randn(1, 4, 3, 3, 1, 1, seed=10, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> Any:
        y = localconn.local_conn2d(x, self.w, padding=1)
        return localconn.local_corr2d(y, x, (1, 4, 3, 3, 1, 1), padding=1)


def test_public_functions_are_leaf_calls() -> None:
    m = UserBlock()
    gm = torch.fx.symbolic_trace(m)
    assert {"local_conn2d", "local_corr2d"} <= leaf_calls(gm)
    x = randn(2, 4, 7, 8, seed=11, dtype=torch.float64)
    assert_close(gm(x), m(x), what="traced user block")
