"""Export: the primitives' functional decompositions (localconn/decompositions.py) against
the reference in float64, their index tables against the taps' runs, torch.export with the
custom ops decomposed, ONNX through the dynamo exporter and the TorchScript exporter run in
onnxruntime against PyTorch, and torch.jit.script's clear refusal."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest
import torch
from random_data import randn, randomize
from tolerances import assert_close

import localconn
from localconn import LocalAttention2d, LocalConn2d, decompositions, models, reference
from localconn.geometry import make_geometry
from localconn.taps import runs


def runs_table(axis: Any) -> list[list[int]]:
    """The index table written out from the taps' runs (the reference's own rule)."""
    table = [[axis.in_size] * axis.out_size for _ in range(axis.kernel)]
    for k in range(axis.kernel):
        for r in runs(axis, k):
            for j in range(r.n):
                for t in range(r.rep):
                    table[k][r.o0 + r.o_step * (j * r.rep + t)] = r.i0 + r.i_step * j
    return table


def test_index_tables_follow_the_runs() -> None:
    checked = 0
    for L, K, d, s in itertools.product(range(1, 16), (1, 2, 3, 4, 5, 7), (1, 2, 3), (1, 2, 3)):
        kinds = [("sliding", dict(stride=s, padding=(K // 2, K - 1), dilation=d))]
        if s == 1:
            kinds.append(("neighborhood", dict(dilation=d)))
        if s == 1 and d == 1:
            kinds.append(("block", {}))
        for window, kw in kinds:
            try:
                geo = make_geometry((L, 3), (K, 1), window=window, **kw)
            except ValueError:
                continue
            assert decompositions.index_table(geo.h).tolist() == runs_table(geo.h), (
                window, L, K, d, s)
            checked += 1
    assert checked > 300


GEOMETRIES = [
    ("sliding", (3, 3), dict(stride=1, padding=1)),
    ("sliding", (3, 5), dict(stride=2, padding=(1, 3), dilation=(2, 1))),
    ("neighborhood", (3, 3), dict(dilation=2)),
    ("neighborhood", (5, 3), {}),
    ("block", (3, 4), {}),
]


@pytest.mark.parametrize(("window", "kernel", "kw"), GEOMETRIES,
                         ids=[f"{w}-{k[0]}x{k[1]}-{i}" for i, (w, k, _) in enumerate(GEOMETRIES)])
def test_decompositions_match_the_reference(window: str, kernel: tuple, kw: dict) -> None:
    """conn2d, conn2d_transpose and corr2d in functional ops equal the reference for every
    sharing mode (samples, channel groups, positions), float64, odd sizes."""
    H, W = 12, 11 if window != "block" else 12
    geo = make_geometry((H, W), kernel, window=window, **kw)
    Ho, Wo = geo.out_size
    x = randn(2, 6, H, W, seed=1, dtype=torch.float64)
    g = randn(2, 6, Ho, Wo, seed=2, dtype=torch.float64)
    bias = randn(6, seed=3, dtype=torch.float64)
    for i, ws in enumerate([(1, 6, *kernel, 1, 1), (2, 3, *kernel, Ho, Wo),
                            (1, 2, *kernel, 1, Wo), (2, 1, *kernel, Ho, 1)]):
        w = randn(*ws, seed=4 + i, dtype=torch.float64)
        what = f"{window} {ws}"
        assert_close(decompositions.conn2d(x, w, bias, geo), reference.conn2d(x, w, bias, geo),
                     what=f"conn2d {what}")
        assert_close(decompositions.conn2d_transpose(g, w, (H, W), geo),
                     reference.conn2d_transpose(g, w, geo), what=f"transpose {what}")
        assert_close(decompositions.corr2d(g, x, ws, geo), reference.corr2d(g, x, ws, geo),
                     what=f"corr2d {what}")


def test_decompositions_keep_the_dtype_and_sum_16_bit_in_float32() -> None:
    geo = make_geometry((9, 9), (7, 7), padding=3)
    x = randn(1, 4, 9, 9, seed=5).to(torch.bfloat16)
    w = randn(1, 4, 7, 7, 1, 1, seed=6).to(torch.bfloat16)
    y = decompositions.conn2d(x, w, None, geo)
    assert y.dtype == torch.bfloat16
    assert_close(y, reference.conn2d(x, w, None, geo), what="bfloat16 conn2d")


def test_export_decomposes_the_custom_ops() -> None:
    m = randomize(LocalConn2d(8, 3, share="channel", groups=2, dynamic=True), seed=7).eval()
    x = randn(2, 8, 10, 9, seed=8)
    ep = torch.export.export(m, (x,)).run_decompositions(decompositions.table())
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not [t for t in targets if "localconn" in t], targets
    assert_close(ep.module()(x), m(x), what="decomposed program")


def run_onnx(model: torch.nn.Module, x: torch.Tensor, tmp_path: Any, name: str,
             inputs: tuple[torch.Tensor, ...] = (), **export_kw: Any) -> list[Any]:
    """``model`` exported by the dynamo exporter, run in onnxruntime on ``inputs`` (or x)."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = str(tmp_path / f"{name}.onnx")
    localconn.export_onnx(model, (x,), path, **export_kw)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    return [session.run(None, {feed: t.numpy()})[0] for t in (inputs or (x,))]


MODULES = {
    "dw": lambda: LocalConn2d(8, 3),
    "dw-reflect-s2": lambda: LocalConn2d(8, 5, stride=2, padding_mode="reflect"),
    "dynamic": lambda: LocalConn2d(8, 3, dynamic=True),
    "involution-s2": lambda: LocalConn2d(8, 3, share="channel", groups=2, dynamic=True, stride=2),
    "neighborhood-attention": lambda: LocalAttention2d(8, 2, kernel_size=3),
    "shifted-block-attention": lambda: LocalAttention2d(8, 2, kernel_size=3, window="block",
                                                        shift=1),
    "sliding-attention": lambda: LocalAttention2d(8, 2, kernel_size=3, window="sliding"),
    "padded-block-attention": lambda: LocalAttention2d(8, 2, kernel_size=5, window="block",
                                                       shift=2, pad_to_blocks=True),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_onnx_modules_run_in_onnxruntime(name: str, tmp_path: Any) -> None:
    m = randomize(MODULES[name](), seed=9).eval()
    x = randn(2, 8, 12, 12, seed=10)
    (got,) = run_onnx(m, x, tmp_path, name)
    with torch.no_grad():
        assert_close(torch.from_numpy(got), m(x), what=f"onnxruntime {name}")


def test_onnx_dynamic_batch(tmp_path: Any) -> None:
    m = randomize(LocalAttention2d(8, 2, kernel_size=3), seed=11).eval()
    x = randn(2, 8, 9, 9, seed=12)
    more = randn(5, 8, 9, 9, seed=13)
    batch = torch.export.Dim("batch", min=2, max=64)
    got = run_onnx(m, x, tmp_path, "dynamic-batch", inputs=(x, more),
                   dynamic_shapes=({0: batch},))
    with torch.no_grad():
        for t, y in zip((x, more), got):
            assert_close(torch.from_numpy(y), m(t), what=f"dynamic batch {tuple(t.shape)}")


@pytest.mark.parametrize("name", ["dwnet_tiny", "idynamic_dwnet_tiny", "swin_tiny"])
def test_onnx_models(name: str, tmp_path: Any) -> None:
    kw = {"img_size": 64, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_classes": 10}
    if name.startswith("swin"):
        kw.update(num_heads=(1, 2, 2, 4), window_size=4, depths=(1, 2, 1, 1))
    if name.startswith("idynamic"):
        kw["groups"] = 4
    m = randomize(models.create(name, **kw), seed=14).eval()
    x = randn(2, 3, 64, 64, seed=15)
    (got,) = run_onnx(m, x, tmp_path, name)
    with torch.no_grad():
        assert_close(torch.from_numpy(got), m(x), what=f"onnxruntime {name}")


@pytest.mark.parametrize("make", [lambda: LocalConn2d(4, 3), lambda: LocalAttention2d(4, 2, 3),
                                  lambda: models.create("dwnet_tiny", img_size=64, embed_dim=16,
                                                        depths=(1, 1, 1, 1))],
                         ids=["LocalConn2d", "LocalAttention2d", "LocalNet"])
def test_jit_script_says_what_to_use(make: Any) -> None:
    with pytest.raises(TypeError, match="torch.jit.trace"):
        torch.jit.script(make())


def test_export_onnx_leaves_no_global_decomposition(tmp_path: Any) -> None:
    """The decompositions are in torch._decomp's table only while export_onnx runs (so
    FakeTensor keeps the ops' own fake kernels: channels_last stays channels_last under
    symbolic sizes)."""
    from torch._decomp import decomposition_table

    m = LocalConn2d(4, 3).eval()
    x = randn(1, 4, 7, 7, seed=18)
    run_onnx(m, x, tmp_path, "scoped")
    assert torch.ops.localconn.conn2d.default not in decomposition_table


@pytest.mark.parametrize("name", ["dw", "involution-s2", "neighborhood-attention",
                                  "shifted-block-attention", "sliding-attention"])
def test_torchscript_exporter(name: str, tmp_path: Any) -> None:
    """``export_onnx(dynamo=False)``: the TorchScript exporter on a trace of standard ops
    (the primitives inlined as their decompositions, attention unfused), run in
    onnxruntime, with a dynamic batch."""
    onnxruntime = pytest.importorskip("onnxruntime")
    m = randomize(MODULES[name](), seed=19).eval()
    x, more = randn(2, 8, 12, 12, seed=20), randn(3, 8, 12, 12, seed=21)
    path = str(tmp_path / f"{name}-legacy.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the exporter's deprecation and tracer warnings)
        localconn.export_onnx(m, (x,), path, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    import onnx

    graph = onnx.load(path).graph
    assert not [n.op_type for n in graph.node if n.domain not in ("", "ai.onnx")]
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for t in (x, more):
            (got,) = session.run(None, {"x": t.numpy()})
            assert_close(torch.from_numpy(got), m(t), what=f"TorchScript exporter {name}")


def test_jit_trace_matches() -> None:
    m = randomize(LocalConn2d(8, 3, dynamic=True), seed=16).eval()
    x = randn(2, 8, 9, 9, seed=17)
    with pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(m, (x,))
    assert_close(traced(x), m(x), what="jit.trace")
    assert localconn.local_conn2d is not None


def test_docstring_examples() -> None:
    """The examples in the docstrings of the export, counting, module and model code run."""
    import doctest

    from localconn import attention, flop_counters, layer, scripting, toolkit
    from localconn.models import skeleton, timm_registry

    for module in (decompositions, flop_counters, layer, attention, skeleton, timm_registry,
                   scripting, toolkit):
        result = doctest.testmod(module, extraglobs={"torch": torch})
        assert result.attempted > 0 and result.failed == 0, module.__name__
