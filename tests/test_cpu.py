"""The CPU backend (``backend="cpu"``, csrc/cpu/) against the reference backend and the oracle.

The same case tables as the CUDA and Triton backends (tests/backend_cases.py): every
sharing mode on every window, strides, paddings, dilations, kernel sizes, dtypes,
layouts, weight views, non-finite values and gradients. Every output the backend
allocates is NaN-poisoned inside guard zones (``cpu_backend.empty`` is patched), so an
element the kernels never write, or a write out of bounds, shows. The instruction sets
the machine does not run by default (AVX2, the baseline) run in a subprocess with
``ATEN_CPU_CAPABILITY`` lowered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import backend_checks
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
    check_primitives,
    corr_scale,
    corr_terms,
    gen,
    out_size,
    rand,
    window_kwargs,
)
from oracle import SHARING_MODES, Sharing, sharing_id, weight_shape
from test_cuda import GuardedOutputs
from tolerances import assert_close

import localconn
from localconn import cpu_backend
from localconn.backends import select
from localconn.cuda_args import conn_meta
from localconn.geometry import make_geometry
from localconn.problem import Problem

CPU = "cpu"
pytestmark = pytest.mark.skipif(cpu_backend.available() is not None,
                                reason=f"{cpu_backend.available()}")


@pytest.fixture(autouse=True)
def _cpu_setup(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """CPU tensors (also on a GPU machine); NaN-poisoned, guarded outputs."""
    monkeypatch.setattr(backend_checks, "DEVICE", "cpu")
    outputs = GuardedOutputs()
    monkeypatch.setattr(cpu_backend, "empty", outputs)
    request.addfinalizer(outputs.check)


def check(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor], kw: dict, what: str,
          g: Optional[torch.Tensor] = None) -> None:
    """All three primitives on the cpu backend against the reference (sums of K*K taps)."""
    taps = w.shape[2] * w.shape[3]
    check_primitives(x, w, bias, kw, what, g=g, backend=CPU, scale=corr_scale(taps))


def test_auto_picks_cpu() -> None:
    """``auto`` runs CPU tensors on the cpu backend when it is built."""
    problem = Problem("conn2d", make_geometry((8, 8), (3, 3), 1, 1, 1, "sliding"), 2, 4,
                      (1, 4, 3, 3, 1, 1), torch.float32, torch.device("cpu"))
    assert select(problem).name == CPU


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("mode", SHARING_MODES, ids=[sharing_id(m) for m in SHARING_MODES])
def test_sharing_modes(mode: Sharing, window: str) -> None:
    """Every (Nw, Cw, Hw, Ww) combination on every window, float32, with bias."""
    kernel, in_size, kw = WINDOWS[window]
    g = gen("cpu-modes", mode, window)
    x = rand((N, C) + in_size, g)
    w = rand(weight_shape(mode, N, C, G, kernel, out_size(in_size, kernel, kw)), g)
    check(x, w, rand((C,), g), kw, f"{sharing_id(mode)} {window}")


#: besides the shared geometries: rows wider than 4 vectors with a partial one, dilated
#: neighborhoods, padding larger than the kernel
CPU_GEOMETRIES = GEOMETRIES + [
    ("sliding", (5, 5), (11, 71), 1, (0, 4), 1),
    ("sliding", (3, 3), (4, 40), 1, 0, 1),
    ("sliding", (1, 1), (5, 6), 1, 2, 1),
    ("neighborhood", (3, 3), (13, 70), 1, 0, 3),
]


@pytest.mark.parametrize("mode", list(GEOMETRY_MODES))
@pytest.mark.parametrize("geo", CPU_GEOMETRIES, ids=[geometry_id(g) for g in CPU_GEOMETRIES])
def test_geometry(geo: tuple, mode: str) -> None:
    """Strides, paddings ('same' with even kernels, asymmetric), dilations, partial vectors."""
    window, kernel, in_size, s, p, d = geo
    kw = window_kwargs(window, s, p, d)
    g = gen("cpu-geometry", geo, mode)
    x = rand((N, C) + in_size, g)
    shape = weight_shape(GEOMETRY_MODES[mode], N, C, G, kernel, out_size(in_size, kernel, kw))
    check(x, rand(shape, g), None, kw, f"{geometry_id(geo)} {mode}")


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("k", [3, 5, 7, 13, 31])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_kernel_sizes(k: int, dynamic: bool, cl: bool) -> None:
    """K x K depth-wise, stride 1 (the flipped-forward transpose): widths around the
    vector and strip lengths, padding smaller than, equal to and larger than K // 2."""
    for pad, size in ((k // 2, (k + 3, 2 * k + 5)), (0, (k + 1, k + 6)), (k // 2 + 2, (5, 7)),
                      (k // 2, (3, 67))):
        g = gen("cpu-k", k, dynamic, pad, size)
        x = rand((2, 3) + size, g, cl=cl)
        w = rand((2 if dynamic else 1, 3, k, k, 1, 1), g)
        check(x, w, rand((3,), g), window_kwargs("sliding", 1, pad), f"k={k} pad={pad} {size}")


#: widths that end a channels_last row in each way of the row window (blocks of 7 pixels,
#: then 1-6 single pixels)
CL_WINDOW_WIDTHS = (1, 3, 5, 7, 11, 13, 14, 16, 19, 27, 30, 56)


def has_bf16_dot() -> bool:
    """Whether this CPU has AVX512-BF16 (PyTorch's cpuinfo, independent of ours)."""
    return bool(torch._C._cpu._get_cpu_capability().get("avx512_bf16", False))


def test_capability_reports_the_bf16_dot_product() -> None:
    """The bfloat16 dot-product kernels run exactly where the CPU has AVX512-BF16 (and the
    AVX-512 kernels run), and LOCALCONN_CPU_BF16_DOT=0 turns them off."""
    fields = dict(f.split("=") for f in cpu_backend.capability().split())
    expected = has_bf16_dot() and fields["isa"] == "avx512"
    assert fields["bf16_dot"] == ("yes" if expected else "no")
    os.environ["LOCALCONN_CPU_BF16_DOT"] = "0"
    try:
        assert "bf16_dot=no" in cpu_backend.capability()
    finally:
        del os.environ["LOCALCONN_CPU_BF16_DOT"]


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("dtype,dot", [(torch.float32, True), (torch.float64, True),
                                       (torch.bfloat16, True), (torch.bfloat16, False),
                                       (torch.float16, True)],
                         ids=["f32", "f64", "bf16", "bf16-fma", "f16"])
def test_channels_last_row_window(k: int, dtype: torch.dtype, dot: bool,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The channels_last row window (kernels_cl.h, C a multiple of the vector length):
    every way a row ends, blocks of two rows and the single last row of an odd count,
    blocks inside the image and across its left/right/top/bottom borders (padding below,
    at and above K // 2), static and per-sample filters; bfloat16 read and written as it
    is, on AVX512-BF16's dot product where the CPU has it (kernels_cl_dot.h; bf16-fma:
    turned off, converted in registers for float FMAs), float16 and float64 through the
    other paths."""
    if not dot:
        monkeypatch.setenv("LOCALCONN_CPU_BF16_DOT", "0")
    for width in CL_WINDOW_WIDTHS:
        for pad in (0, k // 2, k // 2 + 1):
            if width + 2 * pad < k:
                continue
            for dynamic in (False, True):
                g = gen("cpu-cl-window", k, dtype, width, pad, dynamic)
                C = 32
                height = k + 2 + width % 2  # (an odd and an even number of output rows)
                x = rand((2, C, height, width), g, dtype, cl=True)
                w = rand((2 if dynamic else 1, C, k, k, 1, 1), g, dtype)
                check(x, w, rand((C,), g, dtype), window_kwargs("sliding", 1, pad),
                      f"k={k} {height}x{width} pad={pad} dynamic={dynamic}")


@pytest.mark.parametrize("rows", [(2, 1), (1, 2)], ids=["stride", "dilation"])
def test_channels_last_row_window_rows_apart(rows: tuple[int, int]) -> None:
    """The row window where the output rows do not slide by one input row (stride or
    dilation along H only): one output row a block, its input rows from the table."""
    s, d = rows
    for height in (9, 12):
        g = gen("cpu-cl-rows-apart", s, d, height)
        x = rand((2, 32, height, 19), g, cl=True)
        w = rand((1, 32, 5, 5, 1, 1), g)
        check(x, w, rand((32,), g), window_kwargs("sliding", (s, 1), 2, (d, 1)),
              f"stride ({s}, 1) dilation ({d}, 1) height {height}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16],
                         ids=["f32", "f64", "bf16"])
def test_nchw_fourteen_rows(dtype: torch.dtype) -> None:
    """NCHW 7x7 on planes of 14 output rows and one vector (conn_block_k's 14-row block):
    inside the image and across each border, widths with a partial vector; bfloat16 read
    and written as it is (rows converted as they are prepared and stored)."""
    for height, pad in ((14, 3), (20, 0), (12, 4)):
        for width in (7, 13, 14, 16):
            for dynamic in (False, True):
                g = gen("cpu-14-rows", dtype, height, pad, width, dynamic)
                x = rand((2, 5, height, width), g, dtype)
                w = rand((2 if dynamic else 1, 5, 7, 7, 1, 1), g, dtype)
                check(x, w, rand((5,), g, dtype), window_kwargs("sliding", 1, pad),
                      f"{height}x{width} pad={pad} dynamic={dynamic}")


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("mode", LAYOUT_MODES)
def test_layouts_and_dtypes(mode: str, dtype: torch.dtype, cl: bool) -> None:
    """NCHW and channels_last (output keeps the format) in float32/16 and bfloat16."""
    x, w, bias, kw = paper_case(mode, dtype, cl, gen("cpu-layout", mode, dtype, cl))
    check(x, w, bias, kw, f"{mode} {dtype} cl={cl}")


def test_float64_matches_oracle() -> None:
    """float64 (accumulating in float64) meets the float64 tolerance against the oracle."""
    check_float64_against_oracle(CPU, gen("cpu-f64"))


def test_weight_views() -> None:
    """Permuted, expanded (stride 0), transposed-kernel and sliced weights."""
    x, kw, views = weight_views(gen("cpu-views"))
    for name, w in views.items():
        check(x, w, None, kw, f"weight view {name}")


def test_noncontiguous_inputs() -> None:
    """Strided views of x and g, a transposed x, and an expanded (stride 0) gradient."""
    g = gen("cpu-noncontig")
    x = rand((2, 6, 14, 17), g)[:, :, 1::2, ::2]
    w = rand((2, 3, 3, 3, 7, 9), g)
    kw = window_kwargs("sliding", 1, 1)
    check(x, w, None, kw, "strided x")
    check(x, w, None, kw, "expanded g", g=torch.ones(()).expand(2, 6, 7, 9))
    check(x.transpose(2, 3), w.transpose(4, 5), None, kw, "transposed x")
    check(x, rand((1, 6, 5, 5, 1, 1), g), None, window_kwargs("sliding", 1, 2), "strided x 5x5")


@pytest.mark.parametrize(
    "window,kernel,in_size,padding",
    [("sliding", (3, 31), (5, 36), (1, 15)), ("neighborhood", (3, 31), (5, 33), 0),
     ("sliding", (31, 31), (6, 7), 15), ("neighborhood", (9, 9), (9, 30), 0)],
    ids=["sliding-3x31", "neighborhood-3x31", "sliding-31x31", "neighborhood-9x9"],
)
def test_large_kernels(window: str, kernel: tuple[int, int], in_size: tuple[int, int],
                       padding: Any) -> None:
    """Large and non-square kernels (more taps than one group of dot products)."""
    g = gen("cpu-large", window, kernel)
    kw = window_kwargs(window, 1, padding)
    out = out_size(in_size, kernel, kw)
    x = rand((1, 2) + in_size, g)
    check(x, rand((1, 2) + kernel + (1, 1), g), None, kw, f"{window} {kernel} dw")
    check(x, rand((1, 1) + kernel + out, g), None, kw, f"{window} {kernel} shared")


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients(case: str, cl: bool) -> None:
    """Autograd of the layer (x, weight, bias) and a double backward: cpu vs reference."""
    shape, kw, in_size = GRAD_CASES[case]
    g = gen("cpu-grad", case, cl)
    x, w, bias = rand((2, 6) + in_size, g, cl=cl), rand(shape, g), rand((6,), g)
    out = out_size(in_size, shape[2:4], kw)
    go, v = rand((2, 6) + out, g, cl=cl), rand((2, 6) + in_size, g, cl=cl)
    scale = corr_scale(corr_terms(shape, 2, 6, out))
    results = {}
    for backend in (CPU, "reference"):
        leaves = [t.detach().requires_grad_() for t in (x, w, bias)]
        y = localconn.local_conn2d(*leaves, backend=backend, **kw)
        grads = torch.autograd.grad((y * go).sum(), leaves, create_graph=True)
        second = torch.autograd.grad((grads[0] * v).sum(), leaves[1])
        results[backend] = [*grads, *second]
    for name, a, b in zip(("x", "weight", "bias", "weight of d/dx"), results[CPU],
                          results["reference"]):
        assert_close(a, b, what=f"{case}: grad {name}", scale=scale)


@pytest.mark.parametrize("shape", [(1, 6, 3, 3, 1, 1), (6, 6, 3, 3, 1, 1), (1, 3, 3, 3, 9, 10),
                                   (6, 1, 3, 3, 1, 10)],
                         ids=["static-dw", "dynamic-dw", "static-grouped-positions",
                              "dynamic-shared-rows"])
def test_corr_deterministic(shape: tuple) -> None:
    """corr2d's fixed-order reduction: bitwise the same on every run."""
    g = gen("cpu-det", shape)
    a, b = rand((6, 6, 9, 10), g), rand((6, 6, 9, 10), g)
    kw = window_kwargs("sliding", 1, 1)
    got = localconn.local_corr2d(a, b, shape, backend=CPU, **kw)
    ref = localconn.local_corr2d(a, b, shape, backend="reference", **kw)
    assert_close(got, ref, what="corr2d", scale=corr_scale(corr_terms(shape, 6, 6, (9, 10))))
    for _ in range(3):
        assert torch.equal(got, localconn.local_corr2d(a, b, shape, backend=CPU, **kw))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_inf_propagate_like_reference() -> None:
    """NaN/Inf in inputs and in weights of taps that read padding: same pattern as reference
    (the transpose never forms Inf * 0 on the padding: no flipped forward then)."""
    x, w, wdw, kw = nan_inf_inputs(gen("cpu-naninf"))
    check(x, w, None, kw, "nan/inf position weights")
    check(x, wdw, None, kw, "nan/inf depth-wise")
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        # (the channels_last kernels skip padding taps: a filter that is not finite, as
        # tested on its bits per dtype, must go to the kernels that form W * 0)
        check(x.to(dtype).contiguous(memory_format=torch.channels_last), wdw.to(dtype), None,
              kw, f"nan/inf depth-wise channels_last {dtype}")


def test_paper_shape_matches_reference() -> None:
    """A DWNet stage-3 layer (8x384x14x14, 7x7) in float32 and bfloat16."""
    for dtype in (torch.float32, torch.bfloat16):
        g = gen("cpu-paper", dtype)
        x = rand((8, 384, 14, 14), g, dtype)
        check(x, rand((1, 384, 7, 7, 1, 1), g, dtype), rand((384,), g, dtype),
              window_kwargs("sliding", 1, 3), f"paper {dtype}")


ISA_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
import localconn
from backend_checks import gen, rand, window_kwargs
from tolerances import assert_close
print(localconn.cpu_backend.capability())
g = gen("cpu-isa")
for shape, kw in (((1, 6, 7, 7, 1, 1), window_kwargs("sliding", 1, 3)),
                  ((2, 3, 3, 3, 9, 37), window_kwargs("neighborhood", dilation=2)),
                  ((2, 6, 3, 3, 1, 1), window_kwargs("sliding", 2, 1))):
    x = rand((2, 6, 9, 37), g, torch.float64 if shape[0] == 2 and shape[4] == 1 else torch.float32)
    w = rand(shape, g, x.dtype)
    go = localconn.local_conn2d(x, w, **kw, backend="reference")
    for fn, args in ((localconn.local_conn2d, (x, w)),
                     (localconn.local_conn2d_transpose, (go, w, (9, 37))),
                     (localconn.local_corr2d, (go, x, shape))):
        assert_close(fn(*args, **kw, backend="cpu"), fn(*args, **kw, backend="reference"),
                     what=fn.__name__, scale=3.0)
from localconn.window_attention import window_attention
for window, D, Dv, shift in (("neighborhood", 20, 40, (0, 0)), ("block", 136, 9, (1, 2))):
    # head dims of a partial vector, of more vectors than the kernels unroll
    ts = [rand(s, g, torch.float32).requires_grad_()
          for s in ((2, 2 * D, 9, 12), (2, 2 * D, 9, 12), (2, 2 * Dv, 9, 12), (2, 5, 5))]
    outs = [window_attention(*ts[:3], 2, (3, 3), (1, 1), window=window, shift=shift,
                             rpb=ts[3], scale=0.3, fused=fused, backend=backend)
            for fused, backend in ((True, "cpu"), (False, "reference"))]
    grads = [torch.autograd.grad(o.square().sum(), ts) for o in outs]
    for name, a, e in zip(["out", "q", "k", "v", "rpb"], *((o, *gr) for o, gr in zip(outs, grads))):
        assert_close(a, e, what=f"fused attention {{window}} {{name}}", scale=3.0)
print("ok")
"""


@pytest.mark.parametrize("isa", ["default", "avx2"])
def test_every_instruction_set(isa: str) -> None:
    """The kernels of the lower instruction sets (a subprocess with ATEN_CPU_CAPABILITY set),
    float32 and float64, against the reference; the fused attention too."""
    tests = str(Path(__file__).parent)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": isa}
    run = subprocess.run([sys.executable, "-c", ISA_SCRIPT.format(tests=tests)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.split()
    native = cpu_backend.capability().split()[0]
    expected = isa if isa == "default" or native != "isa=default" else "default"
    assert lines[0] == f"isa={expected}", run.stdout
    assert lines[-1] == "ok"


def test_bad_arguments_are_errors() -> None:
    """The ops check their argument list against the tensors (never a crash)."""
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(1, 4, 3, 3, 1, 1)
    meta = conn_meta(x, w, 0, x, make_geometry((8, 8), (3, 3), 1, 1, 1, "sliding"))
    cpu_backend.extension()
    with pytest.raises(RuntimeError, match="argument list"):
        torch.ops.localconn_cpu.conn2d(x, w, None, torch.empty(2, 4, 8, 9), meta)
    with pytest.raises(RuntimeError, match="entries"):
        torch.ops.localconn_cpu.conn2d(x, w, None, torch.empty(2, 4, 8, 8), meta[:-1])
    with pytest.raises(RuntimeError, match="dtype"):
        torch.ops.localconn_cpu.conn2d(x.double(), w, None, torch.empty(2, 4, 8, 8), meta)


def test_no_vector_code_outside_its_instruction_set() -> None:
    """Only the AVX2 and AVX-512 namespaces hold AVX2/AVX-512 code: a header function
    compiled under a target pragma and kept by the linker for every caller would crash a
    CPU without that instruction set (the kernels include PyTorch's headers first, so
    those compile for the baseline)."""
    import shutil

    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    lib = cpu_backend.extension().__file__
    text = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", lib], capture_output=True,
                          text=True, check=True).stdout
    offenders, name = set(), ""
    for line in text.splitlines():
        if line.endswith(">:"):
            name = line.split("<", 1)[1][:-2]
        elif ("%ymm" in line or "%zmm" in line) and not any(
                f"lc_cpu::{isa}::" in name for isa in ("AVX2", "AVX512")):
            offenders.add(name)
    assert not offenders, sorted(offenders)[:10]


@pytest.mark.parametrize("shape", [(1, 2, 0, 5), (0, 2, 4, 5), (1, 2, 4, 0)],
                         ids=["no-rows", "no-batch", "no-columns"])
def test_empty_sizes(shape: tuple) -> None:
    """Empty inputs (with padding: outputs that are not empty) in every primitive, direct
    calls on the backend (no crash, the reference's result)."""
    x = torch.randn(shape)
    w = torch.randn(1, 2, 3, 3, 1, 1)
    kw = window_kwargs("sliding", 1, 2)
    y = localconn.local_conn2d(x, w, torch.tensor([1.5, -2.0]), backend=CPU, **kw)
    ref = localconn.local_conn2d(x, w, torch.tensor([1.5, -2.0]), backend="reference", **kw)
    assert torch.equal(y, ref)
    g = torch.randn(ref.shape)
    if min(shape[2:]) == 0:  # the transpose's input_size must be positive (validation)
        with pytest.raises(ValueError, match="input_size"):
            localconn.local_conn2d_transpose(g, w, shape[2:], backend=CPU, **kw)
    else:
        assert torch.equal(localconn.local_conn2d_transpose(g, w, shape[2:], backend=CPU, **kw),
                           localconn.local_conn2d_transpose(g, w, shape[2:], backend="reference",
                                                            **kw))
    assert_close(localconn.local_corr2d(g, x, w.shape, backend=CPU, **kw),
                 localconn.local_corr2d(g, x, w.shape, backend="reference", **kw), what="corr2d")
