"""The Triton backend (``backend="triton"``) against the reference backend and the oracle.

Without CUDA the kernels run in Triton's CPU interpreter (``conftest.py``
defines them so; each test here sets ``TRITON_INTERPRET=1``) on small
shapes. With CUDA the same tests run compiled on the GPU, plus the
``gpu``-marked tests at the paper's shapes.

Every output and workspace the backend allocates is filled with NaN first
(``launch.empty`` is patched), so an element a kernel does not write shows
up in :func:`assert_close` as a NaN-pattern mismatch.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch
from backend_cases import (
    GEOMETRIES,
    GEOMETRY_MODES,
    GRAD_CASES,
    LAYOUT_MODES,
    WINDOWS,
    C,
    G,
    N,
    check_float64_against_oracle,
    geometry_id,
    nan_inf_inputs,
    paper_case,
    weight_views,
)
from backend_checks import (
    CPU_AUTO,
    DEVICE,
    check_primitives,
    corr_scale,
    corr_terms,
    gen,
    out_size,
    rand,
    window_kwargs,
)
from oracle import (
    SHARING_MODES,
    Sharing,
    sharing_id,
    weight_shape,
)
from tolerances import assert_close

import localconn
from localconn.backends import BackendUnavailableError, select
from localconn.geometry import make_geometry
from localconn.problem import Problem

pytest.importorskip("triton")
pytest.importorskip("localconn.triton_kernels")  # needs `pip install -e .` (package_dir)
NEEDS_CUDA = localconn.triton_kernels.NEEDS_CUDA
launch = importlib.import_module("localconn.triton_kernels.launch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _poisoned_empty(*size: Any, **kwargs: Any) -> torch.Tensor:
    return torch.empty(*size, **kwargs).fill_(float("nan"))


@pytest.fixture(autouse=True)
def _triton_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interpreter on CPU; NaN-poisoned allocations everywhere."""
    if DEVICE == "cpu":
        if not launch.INTERPRETED:
            pytest.skip("the Triton kernels were defined for the GPU in this process")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(launch, "empty", _poisoned_empty)


# ----------------------------------------------------------------------------- helpers


# ------------------------------------------------------- every sharing mode x every window

@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("mode", SHARING_MODES, ids=[sharing_id(m) for m in SHARING_MODES])
def test_sharing_modes(mode: Sharing, window: str) -> None:
    """Every (Nw, Cw, Hw, Ww) combination on every window, float32, with bias."""
    kernel, in_size, kw = WINDOWS[window]
    g = gen("modes", mode, window)
    x = rand((N, C) + in_size, g)
    w = rand(weight_shape(mode, N, C, G, kernel, out_size(in_size, kernel, kw)), g)
    check_primitives(x, w, rand((C,), g), kw, f"{sharing_id(mode)} {window}")


# ------------------------------------------------------------ strides, padding, dilation

@pytest.mark.parametrize("mode", list(GEOMETRY_MODES))
@pytest.mark.parametrize("geo", GEOMETRIES, ids=[geometry_id(g) for g in GEOMETRIES])
def test_geometry(geo: tuple, mode: str) -> None:
    """Strides, paddings (incl. 'same' with even kernels), dilations, odd/even/non-square kernels."""
    window, kernel, in_size, s, p, d = geo
    kw = window_kwargs(window, s, p, d)
    g = gen("geometry", geo, mode)
    x = rand((N, C) + in_size, g)
    shape = weight_shape(GEOMETRY_MODES[mode], N, C, G, kernel, out_size(in_size, kernel, kw))
    check_primitives(x, rand(shape, g), None, kw, f"{geometry_id(geo)} {mode}")


# ------------------------------------------------------------- layouts, dtypes, paper modes

@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("mode", LAYOUT_MODES)
def test_layouts_and_dtypes(mode: str, dtype: torch.dtype, cl: bool) -> None:
    """NCHW and channels_last (output keeps the format) in float32/16 and bfloat16."""
    x, w, bias, kw = paper_case(mode, dtype, cl, gen("layout", mode, dtype, cl))
    check_primitives(x, w, bias, kw, f"{mode} {dtype} cl={cl}")


def test_float64_matches_oracle() -> None:
    """float64 runs (accumulating in float64) and meets the float64 tolerance."""
    check_float64_against_oracle("triton", gen("f64"))


# ------------------------------------------------------------------- weight views, inputs


def test_weight_views_need_no_copy() -> None:
    """Permuted, expanded (stride 0), transposed-kernel and sliced weights."""
    x, kw, views = weight_views(gen("views"))
    for name, w in views.items():
        check_primitives(x, w, None, kw, f"weight view {name}")


def test_noncontiguous_inputs() -> None:
    """Strided views of x and g, and an expanded (stride 0) gradient."""
    g = gen("noncontig")
    big = rand((2, 6, 14, 17), g)
    x = big[:, :, 1::2, ::2]
    w = rand((2, 3, 3, 3, 7, 9), g)
    kw = window_kwargs("sliding", 1, 1)
    check_primitives(x, w, None, kw, "strided x")
    check_primitives(x, w, None, kw, "expanded g", g=torch.ones((), device=DEVICE).expand(2, 6, 7, 9))
    check_primitives(x.transpose(2, 3), w.transpose(4, 5), None, kw, "transposed x")


# ------------------------------------------------------------------------ large kernels


@pytest.mark.parametrize(
    "window,kernel,in_size,padding",
    [
        ("sliding", (3, 31), (5, 36), (1, 15)),
        ("neighborhood", (3, 31), (5, 33), 0),
        ("sliding", (31, 31), (6, 7), 15),
    ],
    ids=["sliding-3x31", "neighborhood-3x31", "sliding-31x31"],
)
def test_31_wide_kernels(window: str, kernel: tuple[int, int], in_size: tuple[int, int],
                         padding: Any) -> None:
    """31-wide kernels on small images (the row loop stops unrolling above 16)."""
    g = gen("k31", window, kernel)
    kw = window_kwargs(window, 1, padding)
    out = out_size(in_size, kernel, kw)
    x = rand((1, 2) + in_size, g)
    check_primitives(x, rand((1, 2) + kernel + (1, 1), g), None, kw, f"{window} {kernel} dw")
    check_primitives(x, rand((1, 1) + kernel + out, g), None, kw, f"{window} {kernel} shared")


# --------------------------------------------------------------------------- gradients

def _grads(backend: str, fn: Any, inputs: list[torch.Tensor], *args: Any, **kw: Any
           ) -> list[torch.Tensor]:
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = fn(*leaves[:2], *args, backend=backend, **kw)
    seed = rand(tuple(out.shape), gen("seed", tuple(out.shape)), out.dtype)
    return list(torch.autograd.grad((out * seed).sum(), leaves))


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients(case: str, cl: bool) -> None:
    """Autograd through all three ops: every gradient, triton vs reference."""
    shape, kw, in_size = GRAD_CASES[case]
    g = gen("grad", case, cl)
    x = rand((2, 6) + in_size, g, cl=cl)
    w = rand(shape, g)
    bias = rand((6,), g)
    out = out_size(in_size, shape[2:4], kw)
    go = rand((2, 6) + out, g, cl=cl)
    scale = corr_scale(corr_terms(shape, 2, 6, out))

    def conn(x_: torch.Tensor, w_: torch.Tensor, b_: torch.Tensor, backend: str, **k: Any):
        return localconn.local_conn2d(x_, w_, b_, backend=backend, **k)

    # conn2d: d/dx, d/dW, d/dbias
    leaves = {b: [t.detach().requires_grad_() for t in (x, w, bias)] for b in ("triton", "reference")}
    grads = {}
    for b, ls in leaves.items():
        y = conn(*ls, b, **kw)
        grads[b] = torch.autograd.grad((y * go).sum(), ls)
    for name, got, ref in zip(("x", "weight", "bias"), grads["triton"], grads["reference"]):
        assert_close(got, ref, what=f"{case}: conn2d grad {name}", scale=scale)

    # conn2d_transpose: d/dg, d/dW
    got = _grads("triton", localconn.local_conn2d_transpose, [go, w], in_size, **kw)
    ref = _grads("reference", localconn.local_conn2d_transpose, [go, w], in_size, **kw)
    for name, a, b in zip(("g", "weight"), got, ref):
        assert_close(a, b, what=f"{case}: conn2d_transpose grad {name}", scale=scale)

    # corr2d: d/da, d/db
    got = _grads("triton", localconn.local_corr2d, [go, x], shape, **kw)
    ref = _grads("reference", localconn.local_corr2d, [go, x], shape, **kw)
    for name, a, b in zip(("a", "b"), got, ref):
        assert_close(a, b, what=f"{case}: corr2d grad {name}", scale=scale)


def test_double_backward() -> None:
    """Second derivatives (the gradient of a gradient) agree with the reference."""
    g = gen("double")
    x, w = rand((2, 6, 7, 8), g), rand((2, 3, 3, 3, 7, 8), g)
    v = rand((2, 6, 7, 8), g)
    kw = window_kwargs("sliding", 1, 1)
    results = {}
    for backend in ("triton", "reference"):
        xl, wl = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = localconn.local_conn2d(xl, wl, backend=backend, **kw)
        (gx,) = torch.autograd.grad((y * y).sum(), xl, create_graph=True)
        results[backend] = torch.autograd.grad((gx * v).sum(), (xl, wl))
    for name, a, b in zip(("x", "weight"), results["triton"], results["reference"]):
        assert_close(a, b, what=f"double backward wrt {name}", scale=4)


# ------------------------------------------------------ corr2d split reduction, int64 path


@pytest.mark.parametrize("splits", [2, 4, 9])
@pytest.mark.parametrize("shape", [(1, 6, 3, 3, 1, 1), (1, 3, 3, 3, 9, 10), (6, 1, 3, 3, 1, 10)],
                         ids=["static-dw", "static-grouped-positions", "dynamic-shared-rows"])
def test_corr_split_reduction(monkeypatch: pytest.MonkeyPatch, shape: tuple, splits: int) -> None:
    """Forced split counts (9 > the reduction's steps: empty splits write zeros); deterministic."""
    monkeypatch.setattr(launch, "FORCE_SPLITS", splits)
    g = gen("splits", shape, splits)
    a, b = rand((6, 6, 9, 10), g), rand((6, 6, 9, 10), g)
    kw = window_kwargs("sliding", 1, 1)
    got = localconn.local_corr2d(a, b, shape, backend="triton", **kw)
    ref = localconn.local_corr2d(a, b, shape, backend="reference", **kw)
    assert_close(got, ref, what=f"corr2d with {splits} splits",
                 scale=corr_scale(corr_terms(shape, 6, 6, (9, 10))))
    again = localconn.local_corr2d(a, b, shape, backend="triton", **kw)
    assert torch.equal(got, again), "corr2d is not bitwise reproducible"


def test_int64_index_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The int64 (BIG) variant of every kernel gives the same results."""
    monkeypatch.setattr(launch, "needs_int64", lambda *tensors, **kw: True)
    g = gen("int64")
    x = rand((2, 6, 7, 8), g, cl=True)
    check_primitives(x, rand((2, 3, 3, 3, 7, 8), g), rand((6,), g), window_kwargs("sliding", 1, 1),
                     "int64 indices")
    check_primitives(rand((2, 6, 7, 8), g), rand((1, 6, 3, 3, 1, 1), g), None,
                     window_kwargs("neighborhood"), "int64 indices neighborhood")


def test_autotune_pruning_and_switch() -> None:
    """Pruning keeps only tiles of the input's layout that fit the problem; tuning is off here."""
    configs = importlib.import_module("localconn.triton_kernels.configs")
    assert not configs.tuning_enabled()  # under pytest (and the interpreter): the fixed tile
    prune = configs.prune_tiles("Ho", "Wo")
    args = {"C": 96, "CPG": 1, "GROUP_ALIGNED": True, "CL": False, "Ho": 56, "Wo": 56}
    kept = prune(configs.CONN_CONFIGS, {}, **args)
    assert kept and all(c in configs.CONN_NCHW and c.kwargs["BC"] == 1 for c in kept)
    kept = prune(configs.CONN_CONFIGS, {}, **dict(args, CL=True, GROUP_ALIGNED=False, Ho=7, Wo=7))
    assert kept and all(c in configs.CONN_CL and c.kwargs["BW"] <= 8 for c in kept)
    assert prune(configs.CONN_CONFIGS, {}, **dict(args, Ho=1, Wo=1))  # never empty
    corr = {"C": 96, "CPG": 32, "REDUCE_C": True, "CL": True, "KH": 3, "KW": 3, "Ho": 14, "Wo": 14,
            "REDUCE_H": True, "REDUCE_W": True}
    kept = configs.prune_corr(configs.CORR_CONFIGS, {}, **corr)
    assert kept and all(c in configs.CORR_CL and c.kwargs["BT"] <= 16 for c in kept)
    # position-specific results (attention logits, involution weights): no tile that spills
    positional = dict(corr, CL=False, KH=7, KW=7, Ho=56, Wo=56, REDUCE_H=False, REDUCE_W=False)
    kept = configs.prune_corr(configs.CORR_CONFIGS, {}, **positional)
    assert kept and all(c.kwargs["BH"] * c.kwargs["BW"] < 128 or c.kwargs["BT"] < 16
                        for c in kept)
    assert len(kept) < len(configs.prune_corr(configs.CORR_CONFIGS, {}, **dict(
        positional, REDUCE_H=True, REDUCE_W=True)))


# ------------------------------------------------------------------------ NaN and Inf


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_inf_propagate_like_reference() -> None:
    """NaN/Inf in inputs and in weights of taps that read padding: same pattern as reference."""
    x, w, wdw, kw = nan_inf_inputs(gen("naninf"))
    check_primitives(x, w, None, kw, "nan/inf position weights")
    check_primitives(x, wdw, None, kw, "nan/inf depth-wise")


# ------------------------------------------------------------------- dispatch and support


def _problem(device: str) -> Problem:
    geo = make_geometry((7, 8), (3, 3), 1, 1, 1, "sliding")
    return Problem("conn2d", geo, 2, 6, (1, 6, 3, 3, 1, 1), torch.float32, torch.device(device))


def test_auto_prefers_triton_on_cuda_only() -> None:
    """Auto-dispatch picks triton (priority 10) for CUDA tensors, never the CPU interpreter."""
    assert localconn.backends()["triton"].available
    if DEVICE == "cuda":
        assert select(_problem("cuda")).name == "triton"
    assert select(_problem("cpu")).name == CPU_AUTO
    assert select(_problem(DEVICE), "triton").name == "triton"


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_declines_cpu_without_interpreter() -> None:
    """Without TRITON_INTERPRET, CPU tensors are declined with the reason; auto uses reference."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = f"""
        import torch, localconn
        from localconn.backends import BackendUnavailableError
        x, w = torch.randn(2, 4, 6, 6), torch.randn(1, 4, 3, 3, 1, 1)
        try:
            localconn.local_conn2d(x, w, padding=1, backend="triton")
        except BackendUnavailableError as e:
            assert {NEEDS_CUDA!r} in str(e), str(e)
        else:
            raise AssertionError("triton accepted a CPU tensor without TRITON_INTERPRET")
        y = localconn.local_conn2d(x, w, padding=1)
        cpu_auto = "cpu" if localconn.backends()["cpu"].available else "reference"
        ref = localconn.local_conn2d(x, w, padding=1, backend=cpu_auto)
        assert torch.equal(y, ref)
        from localconn.backends import select
        from localconn.geometry import make_geometry
        from localconn.problem import Problem
        geo = make_geometry((6, 6), (3, 3), 1, 1, 1, "sliding")
        p = Problem("conn2d", geo, 2, 4, (1, 4, 3, 3, 1, 1), torch.float32, torch.device("cpu"))
        assert select(p).name == cpu_auto
        print("ok")
    """
    r = _run_python(code, env)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_reason_when_triton_is_missing() -> None:
    """Without an importable triton, `import localconn` works and backends() says why."""
    code = """
        import sys
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
        import torch, localconn
        status = localconn.backends()["triton"]
        assert not status.available and "triton is not importable" in status.reason, status
        x, w = torch.randn(1, 2, 5, 5), torch.randn(1, 2, 3, 3, 1, 1)
        try:
            localconn.local_conn2d(x, w, backend="triton")
        except localconn.BackendUnavailableError as e:
            assert "triton is not importable" in str(e), str(e)
        else:
            raise AssertionError("a missing triton was used")
        localconn.local_conn2d(x, w)  # auto falls back to the reference
        print("ok")
    """
    r = _run_python(code, dict(os.environ))
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_other_devices_are_declined_with_a_reason() -> None:
    """A device other than CUDA (or CPU under the interpreter) is declined, naming it."""
    reason = localconn.triton_kernels.supports(_problem("meta"))
    assert reason is not None and "CUDA" in reason and "meta" in reason
    with pytest.raises(BackendUnavailableError, match="meta"):
        select(_problem("meta"), "triton")


# ------------------------------------------------------- compiled kernels, without a GPU

COMPILE_CHECK = """
import sys
import triton
try:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    @triton.jit
    def probe(x):
        pass

    target = GPUTarget("cuda", 90, 32)
    triton.compile(ASTSource(probe, {"x": "*fp32"}, {}), target=target)
except Exception as e:  # no usable sm_90 toolchain / another compiler API
    print("SKIP", type(e).__name__, e)
    sys.exit(0)
from localconn.triton_kernels.conn import conn_kernel
from localconn.triton_kernels.conn_transpose import conn_transpose_kernel
from localconn.triton_kernels.corr import corr_kernel

def build(fn, ptrs, dtype, consts, warps=4):
    sig = {n: "constexpr" if n in consts else (f"*{dtype}" if n in ptrs else "i32")
           for n in fn.arg_names}
    triton.compile(ASTSource(fn, sig, consts), target=target,
                   options={"num_warps": warps, "num_stages": 1})

img = dict(KH=7, KW=7, BIG=False, F64=False, CL=False)
for dtype, extra in [("fp16", {}), ("bf16", dict(BIG=True)), ("fp64", dict(F64=True))]:
    for win, ga, wh, bc, bh, bw in [(0, False, False, 1, 8, 32), (1, True, True, 32, 2, 8)]:
        c = dict(img, WINDOW=win, GROUP_ALIGNED=ga, W_H=wh, W_W=wh, BC=bc, BH=bh, BW=bw, **extra)
        build(conn_kernel, ("x", "w", "bias", "y"), dtype,
              dict(c, HAS_BIAS=True, W_MASKED=wh or not ga))
        m = wh or win != 0
        build(conn_transpose_kernel, ("g_in", "w", "out"), dtype,
              dict(c, MASK_H=m, MASK_W=m, W_MASKED=m or not ga))
    for win, red, bc, bt, bh, bw in [(0, (True, False, True, True), 1, 64, 4, 16),
                                     (1, (False, True, False, False), 32, 8, 2, 8)]:
        c = dict(img, WINDOW=win, REDUCE_N=red[0], REDUCE_C=red[1], REDUCE_H=red[2],
                 REDUCE_W=red[3], BC=bc, BT=bt, BH=bh, BW=bw, **extra)
        build(corr_kernel, ("a", "b", "out"), dtype, c)
print("ok")
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the other tests compile them")
def test_kernels_compile_for_sm90(tmp_path: Any) -> None:
    """The kernels lower to sm_90 code (what the interpreter cannot check), on the CPU."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = tmp_path / "compile_check.py"  # @triton.jit needs its source in a file
    script.write_text(COMPILE_CHECK)
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    if r.returncode == 0 and r.stdout.startswith("SKIP"):
        pytest.skip(f"no sm_90 toolchain here: {r.stdout.strip()}")
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr[-4000:]


# --------------------------------------------------------------------------- GPU shapes

DWNET_STAGES = [(64, 96, 56, 56), (64, 192, 28, 28), (64, 384, 14, 14), (64, 768, 7, 7)]


def _gpu_check(x: torch.Tensor, w: torch.Tensor, kw: dict, what: str) -> None:
    """conn/conn_T against the reference; corr against a float64 reference (long sums)."""
    N, C, H, W = x.shape
    y = localconn.local_conn2d(x, w, backend="triton", **kw)
    assert_close(y, localconn.local_conn2d(x, w, backend="reference", **kw), what=f"{what} conn2d")
    go = torch.randn_like(y)
    xt = localconn.local_conn2d_transpose(go, w, (H, W), backend="triton", **kw)
    ref = localconn.local_conn2d_transpose(go, w, (H, W), backend="reference", **kw)
    assert_close(xt, ref, what=f"{what} conn2d_transpose")
    shape = tuple(w.shape)
    wc = localconn.local_corr2d(go, x, shape, backend="triton", **kw)
    ref = localconn.local_corr2d(go.double(), x.double(), shape, backend="reference", **kw)
    terms = corr_terms(shape, N, C, tuple(go.shape[2:]))
    assert_close(wc, ref.to(wc.dtype), what=f"{what} corr2d", scale=corr_scale(terms))


@gpu
@needs_cuda
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("mode", ["static-dw", "dynamic-dw", "channel-shared"])
@pytest.mark.parametrize("shape", DWNET_STAGES, ids=[f"{s[1]}x{s[2]}" for s in DWNET_STAGES])
def test_gpu_dwnet_stages(shape: tuple, mode: str, cl: bool) -> None:
    """DWNet-T stage shapes, 7x7 padding 3: static / dynamic DW, channel-shared (N, 32, ...)."""
    N, C, H, W = shape
    g = gen("gpu", shape, mode)
    x = rand(shape, g, cl=cl)
    wshape = {"static-dw": (1, C, 7, 7, 1, 1), "dynamic-dw": (N, C, 7, 7, 1, 1),
              "channel-shared": (N, 32, 7, 7, H, W)}[mode]
    _gpu_check(x, rand(wshape, g), window_kwargs("sliding", 1, 3), f"{mode} {shape}")


@gpu
@needs_cuda
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("k", [13, 31])
def test_gpu_neighborhood_attention(k: int, cl: bool) -> None:
    """Neighborhood attention q.k (corr) and A@V (conn) at (64, 384, 32, 32), 12 heads."""
    g = gen("gpu-na", k, cl)
    q, key, v = (rand((64, 384, 32, 32), g, cl=cl) for _ in range(3))
    kw = window_kwargs("neighborhood")
    logits = localconn.local_corr2d(q, key, (64, 12, k, k, 32, 32), backend="triton", **kw)
    ref = localconn.local_corr2d(q, key, (64, 12, k, k, 32, 32), backend="reference", **kw)
    assert_close(logits, ref, what=f"attention logits k={k}", scale=corr_scale(32))
    attn = logits.flatten(2, 3).softmax(2).view_as(logits)
    heads_last = attn.permute(0, 1, 4, 5, 2, 3).contiguous().permute(0, 1, 4, 5, 2, 3)
    out = localconn.local_conn2d(v, heads_last, backend="triton", **kw)
    assert_close(out, localconn.local_conn2d(v, heads_last, backend="reference", **kw),
                 what=f"attention output k={k}")


@gpu
@needs_cuda
@pytest.mark.parametrize("k", [13, 31])
def test_gpu_large_kernels(k: int) -> None:
    """13x13 and 31x31 depth-wise and channel-shared at (64, 384, 32, 32)."""
    g = gen("gpu-large", k)
    x = rand((64, 384, 32, 32), g, torch.float16)
    kw = window_kwargs("sliding", 1, k // 2)
    _gpu_check(x, rand((1, 384, k, k, 1, 1), g, torch.float16), kw, f"dw k={k}")
    _gpu_check(x, rand((64, 12, k, k, 32, 32), g, torch.float16), kw, f"shared k={k}")


@gpu
@needs_cuda
def test_gpu_beyond_int32_offsets() -> None:
    """A tensor of more than 2^31 elements (int64 indices): checked on its last channels."""
    C, H, W = 132, 4096, 4096  # 2.2e9 elements
    assert C * H * W > 2**31
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn((1, C, H, W), generator=g, device="cuda", dtype=torch.float16)
    w = torch.randn((1, C, 3, 3, 1, 1), generator=g, device="cuda", dtype=torch.float16)
    kw = window_kwargs("sliding", 1, 1)
    tail = slice(C - 2, C)
    y = localconn.local_conn2d(x, w, backend="triton", **kw)
    ref = localconn.local_conn2d(x[:, tail], w[:, tail], backend="reference", **kw)
    assert_close(y[:, tail], ref, what="conn2d beyond 2^31")
    xt = localconn.local_conn2d_transpose(y, w, (H, W), backend="triton", **kw)
    ref = localconn.local_conn2d_transpose(y[:, tail], w[:, tail], (H, W), backend="reference", **kw)
    assert_close(xt[:, tail], ref, what="conn2d_transpose beyond 2^31")
    del xt
    wc = localconn.local_corr2d(y, x, tuple(w.shape), backend="triton", **kw)
    ref = localconn.local_corr2d(y[:, tail].double(), x[:, tail].double(), (1, 2, 3, 3, 1, 1),
                                 backend="reference", **kw)
    assert_close(wc[:, tail], ref.half(), what="corr2d beyond 2^31", scale=corr_scale(H * W))


@gpu
@needs_cuda
def test_gpu_autotuned_launches(monkeypatch: pytest.MonkeyPatch) -> None:
    """With autotuning on (outside pytest's fixed tiles), every kernel still matches."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    g = gen("autotune")
    for cl in (False, True):
        x = rand((8, 64, 28, 28), g, torch.float16, cl)
        _gpu_check(x, rand((1, 64, 7, 7, 1, 1), g, torch.float16), window_kwargs("sliding", 1, 3),
                   f"autotuned dw cl={cl}")
        _gpu_check(x, rand((8, 2, 5, 5, 28, 28), g, torch.float16), window_kwargs("neighborhood"),
                   f"autotuned attention cl={cl}")
