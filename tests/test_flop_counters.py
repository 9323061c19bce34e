"""fvcore, thop and ptflops count localconn's layers with localconn.flop_counters' handlers:
what each adds equals the layers' multiply-accumulates worked out here from their shapes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from random_data import randn
from torch import nn

from localconn import LocalAttention2d, LocalConn2d, flop_counters, models

KW = {"img_size": 64, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_classes": 10}


def tiny(name: str) -> nn.Module:
    kw = dict(KW)
    if name.startswith(("swin", "nat")):
        kw.update(num_heads=(1, 2, 2, 4), window_size=4, depths=(1, 2, 1, 1))
    if name.startswith("idynamic"):
        kw["groups"] = 4
    return models.create(name, **kw).eval()


def own_macs(model: nn.Module, x: torch.Tensor) -> int:
    """The localconn layers' own primitives, from the shapes each layer sees (hooks)."""
    total = []

    def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if isinstance(m, LocalConn2d):
            total.append(out.numel() * m.kernel_size[0] * m.kernel_size[1])
        else:
            B, C, H, W = inputs[0].shape
            total.append(B * H * W * m.kernel_size[0] * m.kernel_size[1] * 2 * C)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (LocalConn2d, LocalAttention2d))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    assert total
    return sum(total)


NAMES = ["dwnet_tiny", "idynamic_dwnet_tiny", "swin_tiny", "nat_tiny"]


@pytest.mark.parametrize("name", NAMES)
def test_fvcore(name: str) -> None:
    fvcore_nn = pytest.importorskip("fvcore.nn")
    m, x = tiny(name), randn(1, 3, 64, 64, seed=1)

    def total(**handles: Any) -> tuple[int, set]:
        fa = fvcore_nn.FlopCountAnalysis(m, x).set_op_handle(**handles)
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        return fa.total(), set(fa.unsupported_ops())

    without, missed = total()
    with_, missed_after = total(**flop_counters.fvcore_handles())
    assert {o for o in missed if "localconn" in o}  # (attention: fused on the CPU too)
    assert not {o for o in missed_after if "localconn" in o}
    assert with_ - without == own_macs(m, x)


LAYERS = [lambda: LocalConn2d(8, 5, stride=2), lambda: LocalConn2d(8, 3, dynamic=True),
          lambda: LocalConn2d(8, 3, share="channel", groups=2, dynamic=True),
          lambda: LocalAttention2d(8, 2, kernel_size=3)]
LAYER_IDS = ["dw-s2", "dynamic", "involution", "attention"]


def whole_macs(m: nn.Module, x: torch.Tensor) -> int:
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter, torch.no_grad():
        m(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("make", LAYERS, ids=LAYER_IDS)
def test_thop(make: Any) -> None:
    """thop counts a handled module as a leaf (inside a model, as here): the handler's count
    is the whole module's, torch.utils.flop_counter's MACs (submodules and localconn's ops
    alike)."""
    thop = pytest.importorskip("thop")
    m = make().eval()
    x = randn(2, 8, 12, 12, seed=2)
    macs, _ = thop.profile(nn.Sequential(m), inputs=(x,), custom_ops=flop_counters.thop_custom_ops(),
                           verbose=False)
    assert macs == whole_macs(m, x) >= own_macs(m, x) > 0


def ptflops_total(model: nn.Module, shape: tuple, **kw: Any) -> int:
    ptflops = pytest.importorskip("ptflops")
    return ptflops.get_model_complexity_info(model, shape, as_strings=False,
                                             print_per_layer_stat=False, backend="pytorch",
                                             **kw)[0]


@pytest.mark.parametrize("make", LAYERS, ids=LAYER_IDS)
def test_ptflops(make: Any) -> None:
    """The hooks add exactly the layer's own MACs to what ptflops counts of its submodules."""
    m = make().eval()
    added = (ptflops_total(nn.Sequential(m), (8, 12, 12),
                           custom_modules_hooks=flop_counters.ptflops_hooks())
             - ptflops_total(nn.Sequential(m), (8, 12, 12)))
    assert added == own_macs(m, torch.ones(1, 8, 12, 12)) > 0  # (ptflops: a batch of one)


@pytest.mark.parametrize("name", NAMES)
def test_ptflops_models(name: str) -> None:
    added = (ptflops_total(tiny(name), (3, 64, 64),
                           custom_modules_hooks=flop_counters.ptflops_hooks())
             - ptflops_total(tiny(name), (3, 64, 64)))
    assert added == own_macs(tiny(name), torch.ones(1, 3, 64, 64)) > 0
