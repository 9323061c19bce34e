"""The ``native`` backend (PyTorch's own convolutions, localconn/native_backend.py).

On this machine's tensors (CPU; CUDA where present) against the reference backend:
every static depth-wise geometry of the shared case table that conv2d can express
(strides, dilations, kernel parities, equal paddings), channel groups sharing a filter,
both layouts, every dtype, weight views, non-finite values, gradients through autograd
(and gradcheck in float64); then what it declines and why, and where ``auto`` may
choose it.
"""

from __future__ import annotations

import pytest
import torch
from backend_cases import GEOMETRIES, geometry_id, nan_inf_inputs
from backend_checks import DEVICE, check_primitives, corr_scale, gen, rand, window_kwargs
from tolerances import assert_close

import localconn
from localconn import native_backend
from localconn.backends import BackendUnavailableError, eligible
from localconn.geometry import make_geometry
from localconn.problem import Problem

NATIVE = "native"
#: float16 on CUDA only (PyTorch's CPU convolutions sum it in float16: declined there)
DTYPES = [torch.float32, torch.float64, torch.bfloat16] + (
    [torch.float16] if DEVICE == "cuda" else [])


def _equal_padding(window: str, kernel: tuple, in_size: tuple, stride, padding, dilation) -> bool:
    geo = make_geometry(in_size, kernel, stride, padding, dilation, window)
    top, bottom, left, right = geo.padding
    return window == "sliding" and top == bottom and left == right


SLIDING = [c for c in GEOMETRIES if _equal_padding(*c)]
UNEQUAL = [c for c in GEOMETRIES if c[0] == "sliding" and not _equal_padding(*c)]


def _check(x: torch.Tensor, w: torch.Tensor, bias, kw: dict, what: str, g=None) -> None:
    taps = w.shape[2] * w.shape[3]
    check_primitives(x, w, bias, kw, what, g=g, backend=NATIVE, scale=corr_scale(taps))


def test_table_covers_strides_dilations_and_parities() -> None:
    """The geometries below exercise what conv2d's arguments can vary (the table is shared)."""
    kernels = {k for _, k, *_ in SLIDING}
    assert any(k[0] % 2 == 0 or k[1] % 2 == 0 for k in kernels)  # even kernels
    assert any(s != 1 for *_, s, _, _ in SLIDING)
    assert any(d != 1 for *_, d in SLIDING)
    assert UNEQUAL, "no geometry with unequal padding to check the refusal on"


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", SLIDING, ids=[geometry_id(c) for c in SLIDING])
def test_geometries(case: tuple, cl: bool) -> None:
    """Forward (with bias), input gradient and weight gradient on each sliding geometry."""
    window, kernel, in_size, stride, padding, dilation = case
    g = gen("native", case, cl)
    x = rand((2, 6, *in_size), g, cl=cl)
    w = rand((1, 6, *kernel, 1, 1), g)
    _check(x, w, rand((6,), g), window_kwargs(window, stride, padding, dilation),
           f"native {geometry_id(case)} cl={cl}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
def test_dtypes_and_layouts(dtype: torch.dtype, cl: bool) -> None:
    """A 7x7 layer at an odd size, stride 2 and dilation 2 variants, in every dtype."""
    g = gen("native-dtype", dtype, cl)
    x = rand((3, 10, 13, 11), g, dtype, cl)
    w = rand((1, 10, 7, 7, 1, 1), g, dtype)
    _check(x, w, rand((10,), g, dtype), window_kwargs("sliding", 1, 3), f"7x7 {dtype} cl={cl}")
    _check(x, w, None, window_kwargs("sliding", 2, 3), f"7x7 stride 2 {dtype} cl={cl}")
    w3 = rand((1, 10, 3, 3, 1, 1), g, dtype)
    _check(x, w3, None, window_kwargs("sliding", 1, 2, 2), f"3x3 dilation 2 {dtype} cl={cl}")


@pytest.mark.parametrize("groups", [1, 2, 5])
def test_channel_groups_share_a_filter(groups: int) -> None:
    """``G < C``: each filter is expanded to its group's channels, its gradient summed back."""
    g = gen("native-groups", groups)
    x = rand((2, 10, 9, 8), g)
    w = rand((1, groups, 3, 5, 1, 1), g)
    _check(x, w, None, window_kwargs("sliding", 1, (1, 2)), f"G={groups}")
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    _check(xb, w.to(torch.bfloat16), None, window_kwargs("sliding", 2, 1), f"G={groups} bf16")


def test_weight_views_and_noncontiguous_inputs() -> None:
    """A transposed-kernel weight, a channel-strided weight, a strided x, an expanded g."""
    g = gen("native-views")
    x = rand((2, 6, 14, 17), g)[:, :, 1::2, ::2]
    kw = window_kwargs("sliding", 1, 1)
    _check(x, rand((1, 6, 3, 3, 1, 1), g).transpose(2, 3), None, kw, "kernel-transposed w")
    _check(x, rand((1, 12, 3, 3, 1, 1), g)[:, ::2], None, kw, "sliced w")
    _check(x, rand((1, 6, 3, 3, 1, 1), g), None, kw, "expanded g",
           g=torch.ones((), device=DEVICE).expand(2, 6, 7, 9))
    _check(x.transpose(2, 3), rand((1, 6, 3, 3, 1, 1), g), None, kw, "transposed x")


def test_nan_and_inf() -> None:
    """Non-finite inputs and filters: PyTorch's conv2d results exactly; against the
    reference, equal wherever the reference is finite, and non-finite in every channel
    where the reference is (the documented difference: a padding tap may be skipped
    instead of forming ``Inf * 0``)."""
    x, _, wdw, kw = nan_inf_inputs(gen("native-naninf"))
    x, wdw = x.to(DEVICE), wdw.to(DEVICE)
    C = x.shape[1]
    y = localconn.local_conn2d(x, wdw, backend=NATIVE, **kw)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, wdw.view(C, 1, 3, 3), padding=1,
                                                             groups=C), equal_nan=True)
    g = rand(tuple(y.shape), gen("native-naninf-g"))
    g[1, 0, 0, 5] = float("inf")  # an output gradient whose window reads the padding
    results = {
        "conn2d": lambda b: localconn.local_conn2d(x, wdw, backend=b, **kw),
        "conn2d_transpose": lambda b: localconn.local_conn2d_transpose(g, wdw, (7, 8),
                                                                       backend=b, **kw),
        "corr2d": lambda b: localconn.local_corr2d(g, x, tuple(wdw.shape), backend=b, **kw),
    }
    for name, run in results.items():
        got, want = run(NATIVE), run("reference")
        finite = torch.isfinite(want)
        assert_close(got[finite], want[finite], what=f"{name} where the reference is finite",
                     scale=corr_scale(2 * 7 * 8) if name == "corr2d" else 1.0)
        nonfinite = [(~torch.isfinite(t)).flatten(2).any(-1) for t in (got, want)]
        assert torch.equal(*nonfinite), f"{name}: a channel lost its NaN"


def test_autograd_and_gradcheck() -> None:
    """``local_conn2d(backend="native")``'s gradients equal the reference's; gradcheck in
    float64 (the backward runs the native input and weight gradients)."""
    g = gen("native-grad")
    x = rand((2, 4, 7, 6), g, torch.float64).requires_grad_(True)
    w = rand((1, 2, 3, 3, 1, 1), g, torch.float64).requires_grad_(True)
    b = rand((4,), g, torch.float64).requires_grad_(True)
    kw = window_kwargs("sliding", 2, 1, 1)
    torch.autograd.gradcheck(
        lambda x, w, b: localconn.local_conn2d(x, w, b, backend=NATIVE, **kw), (x, w, b))
    y = localconn.local_conn2d(x, w, b, backend=NATIVE, **kw)
    grads = torch.autograd.grad(y.sin().sum(), (x, w, b))
    y_ref = localconn.local_conn2d(x, w, b, backend="reference", **kw)
    for got, want in zip(grads, torch.autograd.grad(y_ref.sin().sum(), (x, w, b))):
        assert_close(got, want, what="gradient")


def test_layer_runs_on_native() -> None:
    """``LocalConn2d`` (static depth-wise) under ``use_backend("native")`` equals nn.Conv2d."""
    conv = torch.nn.Conv2d(8, 8, 5, padding=2, groups=8, device=DEVICE, dtype=torch.float64)
    layer = localconn.LocalConn2d.from_conv2d(conv)
    x = rand((2, 8, 9, 10), gen("native-layer"), torch.float64)
    with localconn.use_backend(NATIVE):
        assert_close(layer(x), conv(x), what="LocalConn2d on native")


def _problem(weight_shape: tuple, window: str = "sliding", padding=1, dtype=torch.float32,
             device: str = "cpu") -> Problem:
    geo = make_geometry((9, 9), weight_shape[2:4], 1, padding if window == "sliding" else 0, 1,
                        window)
    return Problem("conn2d", geo, 2, 6, weight_shape, dtype, torch.device(device))


@pytest.mark.parametrize(
    "problem, words",
    [
        (_problem((2, 6, 3, 3, 1, 1)), "static depth-wise"),  # dynamic (per sample)
        (_problem((1, 3, 3, 3, 9, 9)), "static depth-wise"),  # involution-like
        (_problem((1, 6, 3, 3, 1, 1), "neighborhood"), "sliding window"),
        (_problem((1, 6, 3, 3, 1, 1), "block"), "sliding window"),
        (_problem((1, 6, 2, 2, 1, 1), padding="same"), "pads both sides"),
        (_problem((1, 6, 3, 2, 1, 1), padding="same"), "pads both sides"),  # width only
        (_problem((1, 6, 3, 3, 1, 1), dtype=torch.int32), "float32"),
        (_problem((1, 6, 3, 3, 1, 1), dtype=torch.float16), "float16 products in float16"),
    ],
    ids=["dynamic", "position-specific", "neighborhood", "block", "same-even",
         "same-even-width", "int",
         "cpu-float16"],
)
def test_declines_with_a_reason(problem: Problem, words: str) -> None:
    """What conv2d cannot compute as it is is declined by name; forcing it says why."""
    reason = native_backend.supports(problem)
    assert reason is not None and words in reason, reason
    assert native_backend.supports(_problem((1, 6, 3, 3, 1, 1))) is None
    assert native_backend.supports(_problem((1, 6, 3, 3, 1, 1), dtype=torch.float16,
                                            device="cuda")) is None


def test_forced_on_a_declined_problem_raises() -> None:
    x = rand((2, 6, 9, 9), gen("native-forced"))
    with pytest.raises(BackendUnavailableError, match="native.*static depth-wise"):
        localconn.local_conn2d(x, rand((2, 6, 3, 3, 1, 1), gen("w")), padding=1,
                               backend=NATIVE)


def test_auto_may_choose_it_on_cuda_only() -> None:
    """For CUDA tensors ``native`` is among auto's candidates (timed beside ours); for CPU
    tensors it runs only when forced, and it never precedes a compiled backend of ours in
    the static order (used when nothing may be timed)."""
    cuda_problem = _problem((1, 6, 3, 3, 1, 1), device="cuda")
    names = [b.name for b in eligible(cuda_problem)]
    assert NATIVE in names and names[-1] == "reference"
    ours = [n for n in names if n not in (NATIVE, "reference")]
    assert all(names.index(n) < names.index(NATIVE) for n in ours)
    assert NATIVE not in [b.name for b in eligible(_problem((1, 6, 3, 3, 1, 1)))]
    assert NATIVE not in [b.name for b in eligible(_problem((2, 6, 3, 3, 1, 1), device="cuda"))]
