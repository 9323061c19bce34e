"""The CUDA backend (``backend="cuda"``) against the reference backend and the oracle.

With a GPU (and ``localconn._C`` built) the tests run the real backend on
CUDA tensors, plus the ``gpu``-marked tests at the paper's shapes. Without
one, the kernels of csrc/ run in the CPU emulator (tests/cuda_emulator.py):
the same kernel bodies, plans, dispatch, argument lists and output
allocation, on CPU tensors, registered as the ``cuda`` backend for the
duration of each test. Every output the backend allocates is filled with NaN
first and sits between guard zones that must stay untouched
(``cuda_backend.empty`` is patched); the emulator starts shared memory and
the split workspace as NaN and guards the end of shared memory, so an
element no thread writes, or a write out of bounds, shows.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

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
from localconn import cuda_backend

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = "cuda"
registry = importlib.import_module("localconn.backends")  # the module (localconn.backends()
# is the status function)


GUARD = 64  # elements before and after every output, which no kernel may write
SENTINEL = 1234.5


class GuardedOutputs:
    """``cuda_backend.empty``: NaN-filled outputs inside a buffer with guard zones.

    :meth:`check` fails if a kernel wrote outside an output (into a guard).
    """

    def __init__(self) -> None:
        self.buffers: list[torch.Tensor] = []

    def __call__(self, size: Any, *, dtype: torch.dtype, device: Any,
                 memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        shape = tuple(size)
        strides = torch.empty(shape, device="meta", memory_format=memory_format).stride()
        numel = 1
        for n in shape:
            numel *= n
        base = torch.full((2 * GUARD + numel,), SENTINEL, dtype=dtype, device=device)
        self.buffers.append(base)
        out = base.as_strided(shape, strides, GUARD)
        return out.fill_(float("nan"))

    def check(self) -> None:
        for base in self.buffers:
            guards = torch.cat([base[:GUARD], base[-GUARD:]])
            assert bool((guards == SENTINEL).all()), "a kernel wrote outside its output"


@pytest.fixture(scope="module")
def emulator() -> Any:
    """The csrc/ kernels compiled for the CPU emulator (None with a GPU)."""
    if torch.cuda.is_available():
        reason = cuda_backend.available()
        if reason is not None:
            pytest.fail(f"a CUDA device is present but the cuda backend is not: {reason}")
        return None
    from cuda_emulator import Emulator, build, compiler

    if compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA kernels' CPU emulator")
    return Emulator(build())


@pytest.fixture(autouse=True)
def _cuda_setup(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
                emulator: Any) -> None:
    """NaN-poisoned, guarded outputs; on CPU the emulator is the ``cuda`` backend."""
    outputs = GuardedOutputs()
    monkeypatch.setattr(cuda_backend, "empty", outputs)
    request.addfinalizer(outputs.check)
    if emulator is not None:
        monkeypatch.setitem(
            registry._REGISTRY,
            CUDA,
            localconn.Backend(CUDA, emulator.conn2d, emulator.conn2d_transpose, emulator.corr2d,
                              priority=5, auto_devices=("cuda",)),
        )


def check(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor], kw: dict, what: str,
          g: Optional[torch.Tensor] = None) -> None:
    """All three primitives on the cuda backend against the reference (sums of K*K taps)."""
    taps = w.shape[2] * w.shape[3]
    check_primitives(x, w, bias, kw, what, g=g, backend=CUDA, scale=corr_scale(taps))


# ------------------------------------------------------- every sharing mode x every window

@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("mode", SHARING_MODES, ids=[sharing_id(m) for m in SHARING_MODES])
def test_sharing_modes(mode: Sharing, window: str) -> None:
    """Every (Nw, Cw, Hw, Ww) combination on every window, float32, with bias."""
    kernel, in_size, kw = WINDOWS[window]
    g = gen("cuda-modes", mode, window)
    x = rand((N, C) + in_size, g)
    w = rand(weight_shape(mode, N, C, G, kernel, out_size(in_size, kernel, kw)), g)
    check(x, w, rand((C,), g), kw, f"{sharing_id(mode)} {window}")


# ------------------------------------------------------------ strides, padding, dilation

#: besides the shared geometries: uneven tiles, wide rows, dilated neighborhoods
CUDA_GEOMETRIES = GEOMETRIES + [
    ("sliding", (5, 5), (11, 21), 1, (0, 4), 1),
    ("sliding", (3, 3), (4, 40), 1, 0, 1),
    ("neighborhood", (3, 3), (13, 70), 1, 0, 3),
]


@pytest.mark.parametrize("mode", list(GEOMETRY_MODES))
@pytest.mark.parametrize("geo", CUDA_GEOMETRIES, ids=[geometry_id(g) for g in CUDA_GEOMETRIES])
def test_geometry(geo: tuple, mode: str) -> None:
    """Strides, paddings ('same' with even kernels, asymmetric), dilations, uneven tiles."""
    window, kernel, in_size, s, p, d = geo
    kw = window_kwargs(window, s, p, d)
    g = gen("cuda-geometry", geo, mode)
    x = rand((N, C) + in_size, g)
    shape = weight_shape(GEOMETRY_MODES[mode], N, C, G, kernel, out_size(in_size, kernel, kw))
    check(x, rand(shape, g), None, kw, f"{geometry_id(geo)} {mode}")


# -------------------------------------------- the register fast path: every fixed kernel size


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("k", [3, 5, 7, 13, 31])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_fixed_kernel_sizes(k: int, dynamic: bool, cl: bool) -> None:
    """K x K depth-wise, stride 1: the KF fast paths of conn2d and of the flipped transpose
    (register strips for 3/5/7 in both layouts; shared-memory tiles for NCHW and channel
    rows for channels_last at 13 and 31).

    Widths that are not a multiple of the 4 outputs per thread, padding
    smaller, equal to and larger than K // 2, and more rows than one tile.
    """
    for pad, size in ((k // 2, (k + 3, 2 * k + 5)), (0, (k + 1, k + 6)), (k // 2 + 2, (5, 7))):
        g = gen("cuda-kf", k, dynamic, pad)
        x = rand((2, 3) + size, g, cl=cl)
        w = rand((2 if dynamic else 1, 3, k, k, 1, 1), g)
        check(x, w, rand((3,), g), window_kwargs("sliding", 1, pad), f"k={k} pad={pad}")


# ---------------------------------------------------- 16-byte row loads (aligned rows)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64],
                         ids=["f32", "f16", "bf16", "f64"])
def test_vectorised_row_loads(dtype: torch.dtype) -> None:
    """Rows of 24 or 40 elements (16-byte aligned starts): tiles staged 16 bytes at a time.

    Chunks start left of the image (padding), cross its right border and
    straddle tile borders; a sliced x (misaligned start) takes the scalar path.
    """
    g = gen("cuda-vec", dtype)
    for (H, W), K, kw in (((9, 24), 5, window_kwargs("sliding", 1, 2)),
                          ((6, 40), 3, window_kwargs("sliding", 1, (0, 3))),
                          ((9, 24), 3, window_kwargs("neighborhood", dilation=2))):
        x = rand((2, 3, H, W), g, dtype)
        wdw = rand((1, 3, K, K, 1, 1), g, dtype)
        check(x, wdw, None, kw, f"vectorised dw {dtype} {W} {kw}")
        check(x[:, :, :, 1:], wdw, None, kw, f"misaligned dw {dtype} {W} {kw}")


# ------------------------------------------------- register-blocked strips (conn_strip.cuh)

#: (H, W, padding): widths whose rows are 16-byte aligned in every dtype (W = 32), only
#: 8-byte aligned in 16-bit types (W = 12: 16-byte chunks in float32, a strip of
#: corr2d's output overhanging the right edge), or not at all (W = 13); padding past a
#: whole strip (first strip two to the left of the image), none (outputs narrower than
#: the input), asymmetric; heights that leave a partial strip of rows
STRIP_SHAPES = [((11, 32), "same"), ((9, 12), "same"), ((9, 12), (1, 2)), ((10, 13), 0),
                ((6, 13), 10)]


def conn_kernel(dtype: torch.dtype, k: int, x: torch.Tensor, padding: Any, out: bool,
                static: bool = True) -> str:
    """The kernel csrc/plan.h picks for a stride-1 K x K depth-wise conn2d (out: the
    forward pass, whose plane is the output; else the transpose, whose plane is x's):
    16-bit planes of at most 16 x 16 with padding K // 2: the batch on tensor cores for a
    filter the samples share (`static`), else a plane a warp (conn_sample); up to 32 x 32
    the batch on 32 x 32 grids for NCHW planes and a shared filter; tensor cores
    for 16-bit NCHW planes of 16 x 16 at least (14 x 14 for a static filter); else the
    strips on a staged band where the pass's column
    padding is K // 2 (the transpose's is K - 1 - pw, and only float32 transposes run
    there): float32 rows of up to 64 on a lane-per-channel band (conn_band_cl), others
    on a band of planes (conn_band); else the strips. Planes 7 or 14 wide and at most 16 high with padding K // 2
    hold the filter in registers (conn_reg): float32, and 16-bit per-sample filters on
    planes 7 wide."""
    ph, pw = (k // 2, k // 2) if padding == "same" else (
        padding if isinstance(padding, tuple) else (padding, padding))
    H, W = x.shape[-2:]
    if (dtype == torch.float32 or (not static and W == 7)) and (ph, pw) == (k // 2, k // 2) \
            and k <= 7 and W in (7, 14) and H <= 16:
        return "conn_reg"
    if dtype != torch.float32 and (ph, pw) == (k // 2, k // 2) and max(H, W) <= 16:
        if not static:
            return "conn_sample"
        return "conn_batch" if max(H, W) <= 8 else "conn_batch_wide"
    if dtype != torch.float32 and (ph, pw) == (k // 2, k // 2) and max(H, W) <= 32 and static:
        return "conn_batch_large"
    rows, cols = (H + 2 * ph - k + 1, W + 2 * pw - k + 1) if out else (H, W)
    least = 14 if static else 16
    if dtype != torch.float32 and rows >= least and cols >= least:
        return "conn_mma"
    band = pw == k // 2 if out else k - 1 - pw == k // 2 and dtype == torch.float32
    if band and dtype == torch.float32 and cols <= 64:
        return "conn_band_cl"
    return "conn_band" if band else "conn_strip"


def corr_kernel(dtype: torch.dtype, k: int = 0, x: Optional[torch.Tensor] = None,
                padding: Any = None, static: bool = True) -> str:
    """The kernel csrc/plan.h picks for a stride-1 3/5/7 NCHW depth-wise weight gradient:
    tensor cores for the 16-bit dtypes (on planes of at most 16 x 16 with padding K // 2
    the batch as K for a filter the samples share, a plane a warp for per-sample
    results; up to 32 x 32 the batch as K on 32 x 32 grids), else the strips; planes 7 or
    14 wide and at most 16 high with padding K // 2 hold a channel's taps in registers
    (corr_reg: float32, and 16-bit per-sample results), other float32 planes 8 to 56 wide
    with padding K // 2 a staged band (corr_band), the rest the strips;
    16-bit 13 x 13 and 31 x 31 take the taps as M (corr_taps_mma)."""
    reg = x is not None and k <= 7 and padding == k // 2 and x.shape[-1] in (7, 14) and \
        x.shape[-2] <= 16
    if dtype == torch.float32:
        band = x is not None and k <= 7 and padding == k // 2 and 8 <= x.shape[-1] <= 56
        return "corr_reg" if reg else "corr_band" if band else "corr_strip"
    if k in (13, 31):
        return "corr_taps_mma"
    if reg and not static:
        return "corr_reg"
    side = max(x.shape[-2:]) if x is not None else 0
    if x is not None and side <= 16 and k <= 7 and padding == k // 2:
        if static:
            return "corr_batch" if side <= 8 else "corr_batch_wide"
        if x.shape[0] > 1:
            return "corr_sample"
    if x is not None and side <= 32 and k <= 7 and padding == k // 2 and static:
        return "corr_batch_large"  # (NCHW x and g: channels_last ones run corr_mma_cl)
    return "corr_mma"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_register_strips(emulator: Any, k: int, dtype: torch.dtype,
                         monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """NCHW K x K depth-wise, stride 1 (K = 3, 5, 7; float64 runs the run-time windows,
    test_float64_matches_oracle) runs conn_strip for conn2d and for the flipped
    conn2d_transpose, corr_strip (16-bit: corr_kernel's tensor-core choice) for corr2d:
    16-byte, 8-byte and single-value
    chunk loads, a sliced (misaligned) x, a narrowed one (aligned rows that are not a
    whole number of chunks), padding wider than a strip, static and dynamic weights,
    bias, corr2d's results split over blocks or not, planned for one multiprocessor
    (several results per block) or for an H200's 132 (one result of many threads)."""
    g = gen("cuda-strips", k, dtype)
    for (H, W), pad in STRIP_SHAPES:
        padding = k // 2 if pad == "same" else pad
        kw = window_kwargs("sliding", 1, padding)
        for nw, splits, sms in ((1, 0, 1), (2, 0, 132), (1, 3, 1), (1, 0, 132)):
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
            if emulator is not None:
                emulator.plan_for_sms(sms)
                request.addfinalizer(lambda: emulator.plan_for_sms(1))
            x = rand((2, 3, H, W), g, dtype)
            w = rand((nw, 3, k, k, 1, 1), g, dtype)
            views = ((x, "aligned"), (x[..., 1:], "sliced"), (x[..., :-3], "narrowed"))
            for xs, what in views if sms == 1 and splits == 0 else views[:1]:
                if emulator is not None:
                    emulator.kernels.clear()
                check(xs, w, rand((3,), g, dtype), kw,
                      f"{k}x{k} {what} {H}x{W} p={pad} Nw={nw} splits={splits}")
                if emulator is not None:  # (16-bit planes from 16 x 16: test_tensor_cores)
                    assert emulator.kernels[:2] == [
                        conn_kernel(dtype, k, xs, padding, out, nw == 1)
                        for out in (True, False)], emulator.kernels
                    assert corr_kernel(dtype, k, xs, padding, nw == 1) in emulator.kernels, \
                        emulator.kernels


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
def test_band_blocks(emulator: Any, dtype: torch.dtype) -> None:
    """conn_band's blocks (7x7, NCHW): rows of 1000 (125 column strips: 2 row strips a
    block, two bands a plane, 16-byte staging), 111 planes of 14 x 14 (as many planes a
    block as shared memory holds, the last block one plane; rows of 14 staged value by
    value), a filter with an Inf (the flipped pass masks the taps outside g, as the
    reference adds none), static and dynamic weights; float16 transposes: the strips,
    float16 14 x 14 planes of a static filter: tensor cores; a filter whose taps are not
    dense (a slice of a wider one): the strips."""
    g = gen("cuda-band", dtype)
    for shape, nw, sliced in (((1, 3, 9, 1000), 1, False), ((3, 37, 14, 14), 1, False),
                              ((3, 37, 14, 14), 3, False), ((2, 3, 9, 40), 2, True)):
        x = rand(shape, g, dtype)
        w = rand((nw, shape[1], 7, 8, 1, 1), g, dtype)[:, :, :, :7] if sliced else \
            rand((nw, shape[1], 7, 7, 1, 1), g, dtype)
        for inf in (False, True):
            if inf:
                w[0, 1, 2, 5] = float("inf")
            if emulator is not None:
                emulator.kernels.clear()
            check(x, w, rand((shape[1],), g, dtype), window_kwargs("sliding", 1, 3),
                  f"band {shape} Nw={nw} inf={inf}")
            if emulator is not None:  # (16-bit: transposes on the strips, 14 x 14 planes
                # of a shared filter on tensor cores)
                expect = [conn_kernel(dtype, 7, x, 3, out, nw == 1) for out in (True, False)]
                if sliced:
                    expect = [k if k not in ("conn_band", "conn_band_cl") else "conn_strip"
                              for k in expect]
                assert emulator.kernels[:2] == expect, emulator.kernels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_register_strips_channels_last(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """channels_last K x K depth-wise, stride 1 (K = 3, 5, 7): conn_strip along the
    channels for conn2d and the flipped conn2d_transpose (float32 with column padding
    K // 2: conn_band_cl, test_band_channels_last; 16-bit filters with padding
    K // 2 on these small planes: conn_batch_wide, per-sample ones conn_sample), corr_strip
    for corr2d (float32, padding K // 2: corr_band; 16-bit, padding K // 2: corr_batch_wide,
    per-sample corr_sample); 33
    channels (a warp that spans two strips, a partial channel tile), a channel slice
    (offset view), partial strips, wide padding, static and dynamic weights, bias."""
    g = gen("cuda-strips-cl", k, dtype)
    for (H, W), pad in STRIP_SHAPES[1:]:
        padding = k // 2 if pad == "same" else pad
        kw = window_kwargs("sliding", 1, padding)
        for nw in (1, 2):
            x = rand((2, 34, H, W), g, dtype, cl=True)
            w = rand((nw, 33, k, k, 1, 1), g, dtype)
            for xs, what in ((x[:, 1:], "sliced"), (x[:, :33].contiguous(
                    memory_format=torch.channels_last), "dense")):
                if emulator is not None:
                    emulator.kernels.clear()
                check(xs, w, rand((33,), g, dtype), kw, f"{k}x{k} cl {what} {H}x{W} p={pad} Nw={nw}")
                if emulator is not None:  # (the sliced x gets an NCHW g: mixed layouts, whose
                    # transpose runs NCHW kernels, conn_mma, conn_band or conn_strip; 16-bit
                    # planes up to 16 x 16 with padding K // 2: the batch, or conn_sample)
                    conn = [name for name in emulator.kernels if name.startswith("conn_")]
                    pw = padding[1] if isinstance(padding, tuple) else padding
                    strip = "conn_band_cl" if dtype == torch.float32 and pw == k // 2 else \
                        "conn_strip" if dtype == torch.float32 or pad != "same" else \
                        conn_kernel(dtype, k, xs, padding, True, nw == 1)
                    assert conn[0] == strip and len(conn) == 2, emulator.kernels
                    if what == "dense":  # (16-bit, padding K // 2: the batch kernels)
                        assert conn[1] == strip, emulator.kernels
                        batch = dtype != torch.float32 and pad == "same"
                        band = dtype == torch.float32 and pad == "same"  # (8 <= W <= 56)
                        corr = "corr_band" if band else "corr_strip" if not batch else \
                            "corr_sample" if nw > 1 else "corr_batch_wide"
                        assert emulator.kernels[-1] == corr, emulator.kernels


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("cl", [True, False], ids=["channels_last", "nchw"])
@pytest.mark.parametrize("k", [3, 7])
def test_band_channels_last(emulator: Any, k: int, cl: bool) -> None:
    """conn_band_cl (float32, column padding K // 2: a band staged a position's channels
    together, a lane a channel) for conn2d and the flipped conn2d_transpose, from
    channels_last pixels and from NCHW planes (staged across, results staged back): 40
    channels (a block of 32 and one of 8: idle lanes) staged 16 bytes at a time, a
    channel slice (channels_last: not 16-byte aligned) and 37 channels staged value by
    value; 28 x 28 (two row strips a block, the last band half empty; four strips of 7
    columns), rows of 60 (eight strips of 8, the last half past the row), rows of 20
    (three strips of 7, the last partial), rows of 19 (NCHW: results value by value),
    rows of 65 (nine strips: conn_strip from pixels, conn_band from planes); row padding
    other than K // 2 (strips whose input rows start above or end below the image); a
    filter with an Inf (the forward multiplies the staged zeros, NaN as in the
    reference; the flipped pass adds no tap outside g); static and per-sample weights,
    bias; a filter whose taps are not dense (a slice of a wider one: conn_strip); filters
    shared by groups of 4 channels (the staged filters' group arithmetic; per-sample: the
    sample's filters)."""
    g = gen("cuda-band-cl", k, cl)
    cases = (((2, 40, 28, 28), k // 2, 1, "dense"), ((3, 41, 11, 60), (1, k // 2), 3, "sliced"),
             ((2, 44, 9, 20), k // 2, 2, "grouped"),
             ((1, 37, 9, 20), (k // 2 + 2, k // 2), 1, "dense"), ((1, 8, 6, 65), k // 2, 1, "dense"),
             ((2, 8, 9, 20), k // 2, 2, "sliced filter"), ((2, 37, 9, 19), k // 2, 2, "dense"))
    for shape, padding, nw, what in cases:
        x = rand(shape, g, cl=cl)
        xs = x[:, 1:] if what == "sliced" else x
        C = xs.shape[1]
        w = rand((nw, C, k, k + 1, 1, 1), g)[:, :, :, :k] if what == "sliced filter" else \
            rand((nw, C // 4 if what == "grouped" else C, k, k, 1, 1), g)
        wide = "conn_strip" if cl else "conn_band"
        expect = "conn_strip" if what == "sliced filter" else \
            wide if shape[-1] > 64 else "conn_band_cl"
        for inf in (False, True):
            if inf:
                w[0, 2, 1, k - 1] = float("inf")
            if emulator is not None:
                emulator.kernels.clear()
            # (g in x's layout, also for the slice: the transpose's band too)
            kw = window_kwargs("sliding", 1, padding)
            gr = rand((shape[0], C, *out_size(shape[2:], (k, k), kw)), g, cl=cl)
            check(xs, w, rand((C,), g), kw,
                  f"band cl={cl} {k}x{k} {what} {shape} p={padding} Nw={nw} inf={inf}", g=gr)
            if emulator is not None:
                assert emulator.kernels[:2] == [expect, expect], emulator.kernels


#: corr_band's planes: (N, C, H, W, what) — 20 columns: 4 strips a row (the third
#: partial, the fourth past a), 16-row bands (13 rows: one band, its last strip one row);
#: 56 columns: 8 strips of 7, bands of 8 rows (30: the last band 6 rows); 8 columns (2
#: strips, bands of 32); 50 columns (the eighth strip one column); 11 channels (a block of
#: 8 and one of 3: idle warps); "sliced": a view one column in (rows not 8-byte aligned:
#: one value a copy), 28 columns (8-byte copies)
BAND_CORR_PLANES = [(3, 11, 13, 20, "dense"), (2, 9, 30, 56, "dense"), (2, 4, 9, 8, "dense"),
                    (1, 3, 17, 50, "dense"), (2, 5, 15, 28, "sliced")]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("k", [3, 7])
def test_corr_band(emulator: Any, k: int, cl: bool, monkeypatch: pytest.MonkeyPatch,
                   request: pytest.FixtureRequest) -> None:
    """corr_band (the float32 depth-wise weight gradient on a staged, double-buffered band:
    NCHW planes copied 16, 8 or 4 bytes at a time by each warp, channels_last pixels by the
    block) against the reference on BAND_CORR_PLANES: static and per-sample filters, the
    plan's split for one multiprocessor and for 132, and forced splits (3; 50: more than
    the items, empty parts store zeros); then non-finite values: Inf in x on its last row
    and column (read by the partial strips' missing outputs, which must skip them), NaN
    in the middle, -Inf in g at a corner (multiplying the padding's zeros: NaN, as the
    reference)."""
    g = gen("cuda-corr-band", k, cl)
    kw = window_kwargs("sliding", 1, k // 2)
    for N_, C_, H, W, what in BAND_CORR_PLANES:
        x = rand((N_, C_, H, W + 1), g, cl=cl)
        xs = x[..., 1:] if what == "sliced" else x[..., :W].contiguous(
            memory_format=torch.channels_last if cl else torch.contiguous_format)
        for nw, splits, sms in ((1, 0, 1), (N_, 0, 1), (1, 0, 132), (1, 3, 1), (N_, 50, 1)):
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)
            if emulator is not None:
                emulator.plan_for_sms(sms)
                request.addfinalizer(lambda: emulator.plan_for_sms(1))
                emulator.kernels.clear()
            gy = rand((N_, C_, H, W), g, cl=cl)
            check(xs, rand((nw, C_, k, k, 1, 1), g), None, kw,
                  f"corr_band cl={cl} {k}x{k} {(N_, C_, H, W)} {what} Nw={nw} splits={splits} "
                  f"sms={sms}", g=gy)
            if emulator is not None:
                assert emulator.kernels[-1] == "corr_band", emulator.kernels
        monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", 0)
        x2 = xs.clone()
        x2[0, 1, H - 1, :] = float("inf")
        x2[N_ - 1, C_ - 1, :, W - 1] = float("inf")
        x2[0, 0, H // 2, W // 2] = float("nan")
        gy = rand((N_, C_, H, W), g, cl=cl)
        gy[N_ - 1, 2, 0, 0] = float("-inf")
        check(x2, rand((1, C_, k, k, 1, 1), g), None, kw,
              f"corr_band cl={cl} {k}x{k} {(N_, C_, H, W)} {what} non-finite", g=gy)
        if emulator is not None:
            assert emulator.kernels[-1] == "corr_band", emulator.kernels


# ------------------------------------------------------ tensor cores (conn_mma.cuh)

def mma_shapes(k: int) -> list[tuple[tuple[int, int], Any]]:
    """(H, W), padding for conn_mma's warp tiles (16 x 32 outputs, 32 x 32 at 13 and 31;
    images and output planes of 16 x 16 at least): two tiles across, the second partial
    (W = 36, past the batch kernels' 32: rows staged in 8-byte pieces, the last chunk half
    outside); several tiles both ways with partial last
    ones (37 x 70: 4-byte pieces); aligned rows (W = 40: 16-byte chunks) with padding 0
    (lead 0) and asymmetric padding (a lead per axis, odd W: value by value); padding wider
    than the kernel's half."""
    return [((k + 13, 36), "same"), ((37, 70), "same"), ((k + 18, 40), 0),
            ((k + 14, k + 20), (1, 2)), ((16, 17), k // 2 + 3)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7, 13, 31])
def test_tensor_cores(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """16-bit NCHW K x K depth-wise, stride 1, runs conn_mma (mma.sync m16n8k16 on
    Toeplitz blocks of the filter) for conn2d and the flipped conn2d_transpose: partial
    and multiple tiles, 16-byte, 8-byte, 4-byte and value-by-value staging (aligned,
    sliced, narrowed rows), every padding lead, static (two samples a warp, an odd
    batch), dynamic and channel-shared weights, bias."""
    g = gen("cuda-mma", k, dtype)
    shapes = mma_shapes(k)
    if k > 7:  # (the emulator's 13x13 and 31x31 are slow: the shapes with two leads,
        # which run conn_mma's instance for small leads (centred: 2 at 13, 1 at 31) and
        # its instance for any lead (padding 2: lead 6; the transpose's 10 / 28: 6 / 4)
        shapes = [shapes[1], shapes[3]]
    for (H, W), pad in shapes:
        padding = k // 2 if pad == "same" else pad
        kw = window_kwargs("sliding", 1, padding)
        # (3 samples on the first and last shapes: a warp takes two samples of a shared
        # filter's channel on planes of up to 4 tiles, the last warp of a channel one)
        x = rand((3 if (H, W) in (shapes[0][0], shapes[-1][0]) else 2, 3, H, W), g, dtype)
        views = ((x, "aligned"), (x[..., 1:], "sliced"), (x[..., :-3], "narrowed"))
        for nw, cw in ((1, 3), (x.shape[0], 3), (1, 1)):
            w = rand((nw, cw, k, k, 1, 1), g, dtype)
            for xs, what in views if (nw, cw) == (1, 3) else views[:1]:
                if emulator is not None:
                    emulator.kernels.clear()
                check(xs, w, rand((3,), g, dtype), kw,
                      f"{k}x{k} {what} {H}x{W} p={pad} Nw={nw} Cw={cw}")
                if emulator is not None:  # (k <= 7: a view narrowed below 16 columns
                    # runs its transpose on the strips)
                    expect = ["conn_mma" if k > 7 else
                              conn_kernel(dtype, k, xs, padding, out, nw == 1)
                              for out in (True, False)]
                    assert emulator.kernels[:2] == expect, emulator.kernels
                    assert "conn_mma" in emulator.kernels, emulator.kernels
    if emulator is not None and k <= 7:  # 14 x 14 and 13 x 14 planes with padding K // 2:
        # the batch (a filter the samples share) or a plane a warp (per-sample filters) on
        # tensor cores; 14 x 17: the batch on 32 x 32 grids; 14 x 33: conn_mma
        for (h, w), nw, expect in (((14, 14), 1, ["conn_batch_wide"] * 2),
                                   ((14, 14), 3, ["conn_sample"] * 2),
                                   ((13, 14), 1, ["conn_batch_wide"] * 2),
                                   ((14, 17), 1, ["conn_batch_large"] * 2),
                                   ((14, 33), 1, ["conn_mma"] * 2)):
            emulator.kernels.clear()
            x = rand((3, 2, h, w), g, dtype)
            check(x, rand((nw, 2, k, k, 1, 1), g, dtype), None,
                  window_kwargs("sliding", 1, k // 2), f"{k}x{k} {h}x{w} Nw={nw}")
            assert emulator.kernels[:2] == expect, (h, w, nw, emulator.kernels)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_tensor_cores_wide_tiles(emulator: Any, dtype: torch.dtype) -> None:
    """7x7 conn_mma on output planes 49..56 wide takes one warp tile of 7 N tiles across
    (plan.h kConnMmaWideNTiles; other widths two or more tiles of 4): 56 wide with aligned
    rows (16-byte staging, whole tiles), 49 with rows cut by the plane's end (37 rows: a
    partial M tile), 53 with padding (1, 2) (another lead; 51 outputs), each also sliced
    (55, 48: the narrow tiles again, 52), per-sample filters (a plane a warp), a filter the
    samples share, bias; conn2d and the flipped transpose against the reference, the
    weight gradient with them."""
    g = gen("cuda-mma-wide", 7, dtype)
    for (H, W), pad in (((56, 56), 3), ((37, 49), 3), ((20, 53), (1, 2))):
        x = rand((3, 2, H, W), g, dtype)
        for xs, what in ((x, "aligned"), (x[..., 1:], "sliced")):
            for nw in (3, 1):
                emulator is None or emulator.kernels.clear()
                check(xs, rand((nw, 2, 7, 7, 1, 1), g, dtype), rand((2,), g, dtype),
                      window_kwargs("sliding", 1, pad), f"7x7 wide {what} {H}x{W} p={pad} Nw={nw}")
                if emulator is not None and nw == 3:  # (per-sample filters: a plane a warp)
                    assert emulator.kernels[:2] == ["conn_mma"] * 2, (what, H, W, emulator.kernels)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7, 13, 31])
def test_tensor_cores_channels_last(emulator: Any, request: Any, k: int,
                                    dtype: torch.dtype) -> None:
    """16-bit channels_last K x K depth-wise (K = 3, 5, 7, 13, 31), stride 1, output planes
    of 16 x 16 at least, every pixel's 8-channel groups aligned: conn_mma_cl for conn2d
    and the flipped conn2d_transpose (16 and 24 channels: two and three blocks of 8),
    partial and multiple tiles (13, 31: two M tiles a warp tile; 31: the output tile one
    M tile at a time), every padding lead, static,
    dynamic and channel-shared weights, bias, and an Inf / NaN in x or the filter (that
    warp's tile takes the direct path). Layouts it does not take run the strips (13:
    register rows, or one value a thread for the slice) and still match: 19 channels, a
    channel slice (misaligned pixels), an NCHW g for the transpose. 31 x 31 runs
    conn_mma_cl at the centred lead where the device lets a block have 110 KB (the
    emulator set to sm_90's 227 KB; at leads past 2 the planes), else the planes
    (test_large_kernels_through_planes)."""
    g = gen("cuda-mma-cl", k, dtype)
    shapes = mma_shapes(k)
    if k == 31 and emulator is not None:
        emulator.smem_optin(227 * 1024)
        request.addfinalizer(lambda: emulator.smem_optin(0))
    # (the emulator is slow: bfloat16, which differs in the mma's type only, on one shape;
    # 31 on the shapes with two leads)
    for (H, W), pad in ([shapes[1], shapes[3]] if k == 31 else shapes) \
            if dtype == torch.float16 else [shapes[1]]:
        padding = k // 2 if pad == "same" else pad
        kw = window_kwargs("sliding", 1, padding)
        # (3 samples on the first shape: a block takes two samples of a shared filter's
        # channels on planes of up to 4 tiles, the last block one)
        nb = 3 if (H, W) == shapes[0][0] else 2
        x24 = rand((nb, 24, H, W), g, dtype, cl=True)
        x20 = rand((nb, 20, H, W), g, dtype, cl=True)
        views = ((x24[:, :16].contiguous(memory_format=torch.channels_last), "16 ch"),
                 (x24, "24 ch"),
                 (x20[:, :19].contiguous(memory_format=torch.channels_last), "19 ch"),
                 (x20[:, 4:], "sliced"), (x24, "NCHW g"))
        # (the emulator is slow: the other views on the shapes with two leads; 31: 16
        # channels and the NCHW g on the centred lead only)
        if k == 31:
            views = (views[0], views[4]) if (H, W) == shapes[1][0] else views[:1]
        for xs, what in views if (H, W) in (shapes[1][0], shapes[3][0]) else views[:1]:
            C_ = xs.shape[1]
            for nw, cw in ((1, C_), (nb, C_), (1, 1)) if what == "16 ch" else ((1, C_),):
                w = rand((nw, cw, k, k, 1, 1), g, dtype)
                emulator is None or emulator.kernels.clear()
                gt = None
                if what == "NCHW g":  # the transpose's result is NCHW: not conn_mma_cl
                    gt = rand((nb, C_) + out_size((H, W), (k, k), kw), g, dtype)
                check(xs, w, rand((C_,), g, dtype), kw,
                      f"{k}x{k} cl {what} {H}x{W} p={pad} Nw={nw} Cw={cw}", g=gt)
                if emulator is not None:  # (the sliced view's g is NCHW: its transpose
                    # runs conn_mma)
                    # (13: the sliced view's y is NCHW, its x channels_last: one value a
                    # thread)
                    pixels, mixed = ("conn_strip",) * 2 if k <= 7 else ("conn_rows", "conn_elem")
                    own = "conn_mma_cl" if k < 31 or pad == "same" else "conn_planes"
                    expect = {"16 ch": [own] * 2, "24 ch": [own] * 2,
                              "19 ch": [pixels] * 2, "sliced": [mixed, "conn_mma"],
                              "NCHW g": [own, "conn_mma"]}[what]
                    assert emulator.kernels[:2] == expect, (what, emulator.kernels)
    (H, W), pad = shapes[1]
    x = rand((2, 16, H, W), g, dtype, cl=True)
    w = rand((1, 16, k, k, 1, 1), g, dtype)
    x[0, 3, 5, 3] = float("inf")  # the first tile of channel 3 (and its neighbours' halos)
    x[1, 12, H - 1, W - 1] = float("nan")  # the last tile of image 1, channel 12
    w[0, 9, 0, k - 1] = float("inf")  # channel 9: a corner tap, read on the padding
    emulator is None or emulator.kernels.clear()
    check(x, w, None, window_kwargs("sliding", 1, k // 2), f"{k}x{k} cl non-finite")
    if emulator is not None:
        assert emulator.kernels[:2] == ["conn_mma_cl", "conn_mma_cl"], emulator.kernels


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 7, 13])
def test_tensor_cores_non_finite(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """An Inf or NaN in a staged tile, or in the transpose's filter, sends that tile
    (plane) to conn_mma's direct path: the Toeplitz zeros must not turn it into NaN
    elsewhere, the transpose's taps outside g must add exactly 0, and the tiles
    without one still match on tensor cores."""
    g = gen("cuda-mma-inf", k, dtype)
    x = rand((2, 3, 40, 70), g, dtype)
    x[0, 0, 5, 3] = float("inf")   # the first tile of plane 0 (and its neighbours' halos)
    x[1, 2, 39, 69] = float("nan")  # the last tile of the last plane
    w = rand((1, 3, k, k, 1, 1), g, dtype)
    w[0, 1, 0, k - 1] = float("inf")  # plane 1: a corner tap, read on the padding
    w[0, 2, k // 2, 0] = float("-inf")
    for pad in (k // 2, 0):
        if emulator is not None:
            emulator.kernels.clear()
        check(x, w, None, window_kwargs("sliding", 1, pad), f"{k}x{k} non-finite p={pad}")
        if emulator is not None:
            assert emulator.kernels.count("conn_mma") == 2, emulator.kernels


#: planes for conn_batch (at most 8 x 8, padding K // 2): DWNet-T's 7 x 7, the whole 8 x 8
#: grid, narrow and flat ones, a single pixel; conn_batch_wide (up to 16 x 16): DWNet-T's
#: 14 x 14, the whole 16 x 16 grid, one dimension past 8
BATCH_PLANES = [(7, 7), (8, 8), (8, 3), (2, 6), (1, 1), (14, 14), (16, 16), (5, 11), (13, 2)]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_batch_tensor_cores(emulator: Any, k: int, dtype: torch.dtype,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """16-bit K x K depth-wise with padding K // 2 on planes of at most 8 x 8 and a filter
    the samples share runs conn_batch (the batch as the GEMM's M) for conn2d and the
    flipped conn2d_transpose and corr_batch (the batch as K) for corr2d, planes of up to
    16 x 16 conn_batch_wide (four warps a channel, a grid 16 wide) and corr_batch_wide
    (four warps a channel, four input rows each), in any layout:
    17 samples (a block of 16 and one of 1; corr2d's sample groups in one split or two),
    12 channels (conn: a block of 8 and one of 4; corr: blocks of 4), NCHW,
    channels_last, channel-sliced and column-sliced views, channel-shared weights, bias;
    an Inf / NaN in x, g or the filter sends that warp (conn) or channel (corr) to the
    direct path (an Inf of g at a corner meets the padding only). A per-sample filter
    runs conn_sample and corr_sample (test_sample_tensor_cores), other padding the strips
    and corr_mma."""
    g = gen("cuda-batch", k, dtype)
    kw = window_kwargs("sliding", 1, k // 2)
    for H, W in BATCH_PLANES if dtype == torch.float16 else BATCH_PLANES[:2] + BATCH_PLANES[5:7]:
        wide = max(H, W) > 8
        x = rand((17, 13, H, W + 1), g, dtype)
        xcl = rand((17, 12, H, W), g, dtype, cl=True)
        views = ((x[:, :12, :, :W].contiguous(), "NCHW"), (xcl, "channels_last"),
                 (x[:, 1:, :, 1:], "sliced"))
        for xs, what in views if (H, W) in ((7, 7), (2, 6), (14, 14)) else views[:1]:
            C_ = xs.shape[1]
            for nw, cw in ((1, C_), (1, 1)) if what == "NCHW" else ((1, C_),):
                w = rand((nw, cw, k, k, 1, 1), g, dtype)
                emulator is None or emulator.kernels.clear()
                splits = 2 if what == "channels_last" else 0  # 0: the plan's own (one)
                monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)
                check(xs, w, rand((C_,), g, dtype), kw,
                      f"{k}x{k} {what} {H}x{W} Cw={cw} splits={splits}")
                if emulator is not None:  # (corr2d: a per-channel result)
                    conn = "conn_batch_wide" if wide else "conn_batch"
                    corr = emulator.kernels[2] if cw != C_ else "corr_batch_wide" if wide else "corr_batch"
                    assert emulator.kernels[:3] == [conn] * 2 + [corr], (what, emulator.kernels)
    monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", 0)
    x = rand((17, 12, 7, 7), g, dtype)
    w = rand((1, 12, k, k, 1, 1), g, dtype)
    x[0, 3, 2, 3] = float("inf")  # channel 3 of the first block of samples
    x[16, 10, 6, 6] = float("nan")  # the last block's only sample, channel 10
    w[0, 9, 0, k - 1] = float("inf")  # channel 9: a corner tap, read on the padding
    gy = rand((17, 12, 7, 7), g, dtype)
    gy[2, 5, 0, 0] = float("-inf")  # channel 5: read against the padding by most taps
    emulator is None or emulator.kernels.clear()
    check(x, w, None, kw, f"{k}x{k} non-finite", g=gy)
    if emulator is not None:
        assert emulator.kernels[:3] == ["conn_batch"] * 2 + ["corr_batch"], emulator.kernels
    xw = rand((17, 4, 14, 14), g, dtype)
    ww = rand((1, 4, k, k, 1, 1), g, dtype)
    xw[0, 1, 5, 3] = float("inf")  # channel 1: the warps of output rows 0..11 read it
    xw[16, 3, 13, 13] = float("nan")  # the last block's only sample, channel 3, the corner
    ww[0, 2, 0, k - 1] = float("inf")  # channel 2: a corner tap, read on the padding
    gw = rand((17, 4, 14, 14), g, dtype)
    gw[3, 0, 13, 0] = float("-inf")  # channel 0: a corner, against the padding by most taps
    emulator is None or emulator.kernels.clear()
    check(xw, ww, None, kw, f"{k}x{k} 14x14 non-finite", g=gw)
    if emulator is not None:
        assert emulator.kernels[:3] == ["conn_batch_wide"] * 2 + ["corr_batch_wide"], emulator.kernels
        for nw, pad, expect in ((17, k // 2, ["conn_reg", "conn_reg", "corr_reg"]),  # (7 x 7)
                                (1, k // 2 + 1, ["conn_strip", "conn_strip", "corr_mma"])):
            emulator.kernels.clear()
            check(x[:, :2], rand((nw, 2, k, k, 1, 1), g, dtype), None,
                  window_kwargs("sliding", 1, pad), f"{k}x{k} Nw={nw} p={pad}")
            assert emulator.kernels[:3] == expect, (nw, pad, emulator.kernels)


#: the batch kernels' 32 x 32 grids (planes past 16 x 16, within 32 x 32): DWNet-T's 28 x 28,
#: the whole grid, a column half (N tiles) past the plane (17 x 5, 30 x 16), 3 rows (warps of
#: no rows) by 32 columns, a partial second half (19 x 25)
LARGE_PLANES = [(28, 28), (32, 32), (17, 5), (3, 32), (19, 25), (30, 16)]
#: planes past 32 x 32 as 32 x 32 tiles of the forward pass (at least three quarters of the
#: tiles' outputs inside): DWNet-T's 56 x 56 (2 x 2 tiles, the last ones 24 wide), partial
#: tiles of 18 rows and 30 columns (50 x 62), three tiles across (30 x 96); 33 x 64 would be
#: half empty (conn_mma)
TILED_PLANES = [(56, 56), (50, 62), (30, 96)]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_batch_large(emulator: Any, k: int, dtype: torch.dtype,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """16-bit K x K depth-wise with padding K // 2 and a filter the samples share on NCHW
    planes past 16 x 16 and within 32 x 32 runs the batch kernels on 32 x 32 grids, a
    channel a block: conn_batch_large for the forward pass and the flipped transpose
    (conn_batch_wide.cuh, eight warps of four output rows, four N tiles each), and
    corr_batch_large for the weight gradient (corr_batch_wide.cuh, eight warps of four
    input rows, two 16-column halves): 17 samples (a group of 16 and one of 1, in one split
    or two), 3 channels, dense views (two columns a load) and sliced ones (odd columns
    cut: value by value; rows and channels cut: NCHW-like strides) and channels_last ones
    whose pixels are not 16-byte groups (16 x 32 tiles of two channels; the weight gradient
    on the strips); channels_last 16-byte pixels, with a shared filter too, and per-sample
    filters go to conn_mma(_cl) / corr_mma(_cl)
    (a channels_last 7 x 7 weight gradient 17..32 wide: corr_taps_mma_cl); an Inf / NaN in
    x or g sends only its channel (its warps) to the direct path (a -inf of g at a corner
    meets the padding's zeros). Planes past 32 x 32 run conn_batch_large as 32 x 32 tiles
    (TILED_PLANES; their weight gradient corr_mma), the direct path of a tile too (an Inf
    in a tile's halo), and planes whose tiles would be half empty conn_mma."""
    g = gen("cuda-batch-large", k, dtype)
    kw = window_kwargs("sliding", 1, k // 2)
    planes = LARGE_PLANES + TILED_PLANES if dtype == torch.float16 else LARGE_PLANES[:2] + \
        TILED_PLANES[:1]
    for H, W in planes:
        corr = "corr_batch_large" if max(H, W) <= 32 else "corr_mma"
        x = rand((17, 4, H, W + 1), g, dtype)
        views = ((x[:, :3, :, :W].contiguous(), "NCHW", 0), (x[:, 1:, :, 1:], "sliced", 2),
                 (x[:, :3, :, :W].contiguous(memory_format=torch.channels_last), "channels_last", 0))
        for xs, what, splits in views if (H, W) in ((28, 28), (19, 25), (50, 62)) else views[:1]:
            # (channels_last: 16 x 32 tiles of two channels; 3 channels are not 16-byte
            # pixels, so the weight gradient runs the strips)
            corr_x = "corr_strip" if what == "channels_last" else corr
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
            emulator is None or emulator.kernels.clear()
            check(xs, rand((1, 3, k, k, 1, 1), g, dtype), rand((3,), g, dtype), kw,
                  f"{k}x{k} {what} {H}x{W} splits={splits}")
            if emulator is not None:
                assert emulator.kernels == ["conn_batch_large"] * 2 + [corr_x], (
                    what, emulator.kernels)
    monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", 0)
    for H, W in (planes[0], TILED_PLANES[0]):
        x = rand((17, 4, H, W), g, dtype)
        x[0, 1, 9, 3] = float("inf")  # channel 1: read by the warps of rows 8..15 and past
        x[16, 3, H - 1, W - 1] = float("nan")  # the last group's only sample, channel 3's corner
        gy = rand((17, 4, H, W), g, dtype)
        gy[3, 0, H - 1, 0] = float("-inf")  # channel 0: a corner, against the padding by most taps
        if H > 32:  # a tile's halo: channel 2, row 33 (tiles below, and above's halo), column 30
            gy[5, 2, 33, 30] = float("inf")
        emulator is None or emulator.kernels.clear()
        check(x, rand((1, 4, k, k, 1, 1), g, dtype), None, kw, f"{k}x{k} {H}x{W} non-finite", g=gy)
        if emulator is not None:
            corr = "corr_batch_large" if H <= 32 else "corr_mma"
            assert emulator.kernels == ["conn_batch_large"] * 2 + [corr], emulator.kernels
    if emulator is not None:
        H, W = planes[0]
        # (a per-sample channels_last 7 x 7 weight gradient 17..32 wide: corr_taps_mma_cl)
        taps_cl = "corr_taps_mma_cl" if k == 7 and 16 < W <= 32 else "corr_mma_cl"
        for xs, nw, expect in ((rand((2, 8, H, W), g, dtype, cl=True), 2,
                                ["conn_mma_cl"] * 2 + [taps_cl]),
                               # (a shared filter on 16-byte pixels: conn_mma_cl too, not the
                               # tiles of two channels; 56 x 56 as well)
                               (rand((17, 8, H, W), g, dtype, cl=True), 1, ["conn_mma_cl"] * 2),
                               (rand((3, 16, 56, 56), g, dtype, cl=True), 1, ["conn_mma_cl"] * 2),
                               (x[:2, :, :H, :W], 2, ["conn_mma"] * 2 + ["corr_mma"]),
                               (rand((2, 3, 33, 64), g, dtype), 1,
                                ["conn_mma"] * 2 + ["corr_mma"])):  # (half empty tiles)
            emulator.kernels.clear()
            check(xs, rand((nw, xs.shape[1], k, k, 1, 1), g, dtype), None, kw,
                  f"{k}x{k} {tuple(xs.shape)} Nw={nw}")
            assert emulator.kernels[:len(expect)] == expect, (nw, emulator.kernels)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_batch_channels_last_pixel_pairs(emulator: Any, dtype: torch.dtype) -> None:
    """conn_batch_wide / conn_batch_large (and corr_batch_wide's staging of G and X) on
    channels_last images of an even channel count move a pixel's two channels as one
    4-byte load or store a sample (plan.h batch_pixel_pairs): 16 x 16 grids (14 x 14,
    13 x 11) and 16 x 32 tiles (28 x 28, 19 x 25,
    and 50 x 62 as partial tiles), 17 samples (a last group of one), 6 channels (three
    blocks of two), with bias; an odd channel count (5) stages value by value, to the same
    results; an Inf in x and a NaN in g (their channels' warps take the direct path) still
    match."""
    k = 7
    g = gen("cuda-batch-pixel-pairs", dtype)
    kw = window_kwargs("sliding", 1, k // 2)
    for H, W in ((14, 14), (13, 11), (28, 28), (19, 25), (50, 62)):
        wide = max(H, W) <= 16
        kernel = "conn_batch_wide" if wide else "conn_batch_large"
        views = ((rand((17, 6, H, W), g, dtype, cl=True), "pairs"),
                 (rand((17, 5, H, W), g, dtype, cl=True), "odd C"))
        for xs, what in views if (H, W) in ((14, 14), (28, 28)) else views[:1]:
            C_ = xs.shape[1]
            emulator is None or emulator.kernels.clear()
            check(xs, rand((1, C_, k, k, 1, 1), g, dtype), rand((C_,), g, dtype), kw,
                  f"cl {what} {H}x{W}", g=rand((17, C_, H, W), g, dtype, cl=True))
            if emulator is not None:  # (past 16 x 16 the weight gradient is not batched)
                assert emulator.kernels[:2] == [kernel] * 2, (what, emulator.kernels)
                assert not wide or emulator.kernels[2] == "corr_batch_wide", emulator.kernels
        x = rand((17, 6, H, W), g, dtype, cl=True)
        x[16, 3, H // 2, W - 1] = float("inf")  # the last group's only sample, channel 3
        gy = rand((17, 6, H, W), g, dtype, cl=True)
        gy[4, 0, 0, W // 2] = float("nan")  # channel 0: the first row
        emulator is None or emulator.kernels.clear()
        check(x, rand((1, 6, k, k, 1, 1), g, dtype), None, kw, f"cl non-finite {H}x{W}", g=gy)
        if emulator is not None:
            assert emulator.kernels[:2] == [kernel] * 2, emulator.kernels
            assert not wide or emulator.kernels[2] == "corr_batch_wide", emulator.kernels


#: the register kernels' planes (widths 7 and 14, at most 16 rows): DWNet-T's 7 x 7 and
#: 14 x 14, the tallest (16), one row, and rows that leave kernel rows out on both sides
REG_PLANES = [(7, 7), (14, 14), (16, 14), (1, 7), (5, 14), (13, 7)]


def reg_kernels(dtype: torch.dtype, W: int) -> list[str]:
    """The kernels of conn2d, conn2d_transpose and corr2d on a register plane W wide
    (per-sample filters for 16-bit: their 14-wide conn2d runs conn_sample, plan.h)."""
    conn = "conn_reg" if dtype == torch.float32 or W == 7 else "conn_sample"
    return [conn, conn, "corr_reg"]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_registers(emulator: Any, k: int, dtype: torch.dtype,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """K x K depth-wise with padding K // 2 on planes 7 or 14 wide and at most 16 high runs
    conn_reg for conn2d and the flipped conn2d_transpose (the filter in a thread's
    registers) and corr_reg for corr2d (a channel's K * K sums in registers), float32 sums
    of float32 or 16-bit values (16-bit: per-sample filters, conn2d on planes 7 wide; a
    filter the samples share runs the batch on tensor cores): 3 samples and 37 channels (a partial group of 32), a
    bias, the static filter's weight gradient in one split, the plan's or several (a split
    that ends inside a sample), per-sample filters (Nw = N); NCHW, channels_last and
    sliced views; an Inf / NaN of x, g or the filter reaches exactly the outputs and taps
    the reference's do; planes 8 wide or 17 high, and other padding, go elsewhere (float32:
    the band / strips). Dense planes whose values come 4 at a time (14 wide, an even number
    of rows) stage and store them so, and value by value at an odd address (the emulator
    fails a misaligned wide access); channels_last pixels of a multiple of 4 channels
    four channels a load and store (at an odd address: value by value); a filter that 4 or more warps share (static, or a
    sample's own on 14 x 14) comes through shared memory, the rest (smaller planes,
    per-sample filters of 7 x 7 planes, 16-bit) from global memory directly."""
    g = gen("cuda-reg", k, dtype)
    kw = window_kwargs("sliding", 1, k // 2)
    f32 = dtype == torch.float32
    for H, W in REG_PLANES:
        x = rand((3, 38, H, W + 1), g, dtype)
        # (dense planes, and pixels of 36 channels, at an address no 4-value load may
        # take: value by value)
        odd = torch.empty(3 * 37 * H * W + 1, dtype=dtype, device=DEVICE)[1:].view(3, 37, H, W)
        odd_cl = torch.empty(3 * 36 * H * W + 1, dtype=dtype, device=DEVICE)[1:].view(3, H, W, 36).permute(0, 3, 1, 2)
        views = ((x[:, :37, :, :W].contiguous(), "NCHW"),
                 (x[:, :37, :, :W].contiguous(memory_format=torch.channels_last), "channels_last"),
                 (x[:, :36, :, :W].contiguous(memory_format=torch.channels_last),
                  "channels_last, 36 channels"),  # (4 channels a load)
                 (x[:, 1:, :, 1:], "sliced"), (odd.copy_(x[:, :37, :, :W]), "NCHW at an odd address"),
                 (odd_cl.copy_(x[:, :36, :, :W]), "channels_last at an odd address"))
        for xs, what in views:
            runs = ((1, 0), (1, 4), (3, 0)) if what[:5] != "slice" else ((1, 5),)
            C_ = xs.shape[1]
            for nw, splits in runs if f32 else ((3, 0),):
                monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
                emulator is None or emulator.kernels.clear()
                check(xs, rand((nw, C_, k, k, 1, 1), g, dtype), rand((C_,), g, dtype),
                      kw, f"{k}x{k} {what} {H}x{W} Nw={nw} splits={splits}")
                if emulator is not None:
                    assert emulator.kernels[:3] == reg_kernels(dtype, W), (what, H, W, emulator.kernels)
    monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", 0)
    H, W = (14, 14) if f32 else (13, 7)
    x = rand((3, 33, H, W), g, dtype)
    x[1, 2, 0, W - 1] = float("inf")  # channel 2: a corner
    x[2, 32, H // 2, W // 2] = float("nan")  # channel 32 (the second group's only one): the middle
    gy = rand((3, 33, H, W), g, dtype)
    gy[0, 5, H - 1, 0] = float("-inf")  # channel 5: a corner, against the padding by most taps
    for nw in (1, 3) if f32 else (3,):
        w = rand((nw, 33, k, k, 1, 1), g, dtype)
        w[nw - 1, 7, 0, k - 1] = float("inf")  # channel 7's corner tap: on the padding at the top
        emulator is None or emulator.kernels.clear()
        check(x, w, None, kw, f"{k}x{k} non-finite Nw={nw}", g=gy)
        if emulator is not None:
            assert emulator.kernels[:3] == reg_kernels(dtype, W), emulator.kernels
    if emulator is not None:
        for (H, W), pad in (((7, 8), k // 2), ((17, 14), k // 2), ((14, 14), (k // 2, 0))):
            emulator.kernels.clear()
            nw = 1 if f32 else 2
            check(rand((2, 3, H, W), g, dtype), rand((nw, 3, k, k, 1, 1), g, dtype),
                  None, window_kwargs("sliding", 1, pad), f"{k}x{k} {H}x{W} p={pad}")
            want = corr_kernel(dtype, k, rand((1, 1, H, W), g), pad)  # (float32: the band,
            # or for padding other than K // 2 the strips)
            assert not f32 or emulator.kernels[-1] == want, (H, W, pad, emulator.kernels)
            assert not {"conn_reg", "corr_reg"} & set(emulator.kernels), (H, W, pad, emulator.kernels)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_sample_tensor_cores(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """16-bit K x K depth-wise with padding K // 2 on planes of at most 16 x 16 and a filter
    of each sample's own (dynamic depth-wise, Nw = N) runs conn_sample for conn2d and the
    flipped conn2d_transpose and corr_sample for corr2d (planes 7 or 14 wide: the register
    kernels, test_registers): a grid 8 wide (two grid rows a K
    tile) for planes of at most 8 x 8, else 16 wide; 19 samples (a block of 16 and one of 3: a warp's planes cut
    by the batch's end), 9 channels (blocks of 2 or 4 channels, the last one short), NCHW,
    channels_last and sliced views, channel-shared per-sample filters, bias; an Inf / NaN
    in x, g or one sample's filter sends only that plane to the direct path (corr2d: an Inf
    of g at a corner meets the padding's zeros)."""
    g = gen("cuda-sample", k, dtype)
    kw = window_kwargs("sliding", 1, k // 2)
    for H, W in BATCH_PLANES if dtype == torch.float16 else BATCH_PLANES[:2] + BATCH_PLANES[5:7]:
        x = rand((19, 10, H, W + 1), g, dtype)
        xcl = rand((19, 9, H, W), g, dtype, cl=True)
        views = ((x[:, :9, :, :W].contiguous(), "NCHW"), (xcl, "channels_last"),
                 (x[:, 1:, :, 1:], "sliced"))
        for xs, what in views if (H, W) in ((7, 7), (2, 6), (14, 14), (13, 2)) else views[:1]:
            C_ = xs.shape[1]
            for cw in (C_, 1) if what == "NCHW" else (C_,):
                w = rand((19, cw, k, k, 1, 1), g, dtype)
                emulator is None or emulator.kernels.clear()
                check(xs, w, rand((C_,), g, dtype), kw, f"{k}x{k} {what} {H}x{W} Cw={cw}")
                if emulator is not None:  # (a channel-shared result sums the channels:
                    # not corr_sample's; a 1 x 1 plane's result is position-specific too;
                    # planes 7 or 14 wide: the register kernels)
                    corr = [] if cw != C_ else [
                        "corr_pos" if H * W == 1 else corr_kernel(dtype, k, xs, k // 2, False)]
                    conn = conn_kernel(dtype, k, xs, "same", True, False)
                    assert emulator.kernels[:2 + len(corr)] == [conn] * 2 + corr, (
                        what, emulator.kernels)
    for H, W in ((8, 8), (13, 13)):
        x = rand((19, 5, H, W), g, dtype)
        w = rand((19, 5, k, k, 1, 1), g, dtype)
        x[0, 3, 2, 3] = float("inf")  # sample 0, channel 3
        x[18, 4, H - 1, W - 1] = float("nan")  # the last block's last sample and channel
        w[5, 1, 0, k - 1] = float("inf")  # sample 5, channel 1: a corner tap on the padding
        gy = rand((19, 5, H, W), g, dtype)
        gy[2, 0, 0, 0] = float("-inf")  # sample 2, channel 0
        emulator is None or emulator.kernels.clear()
        check(x, w, None, kw, f"{k}x{k} {H}x{W} per-sample non-finite", g=gy)
        if emulator is not None:
            assert emulator.kernels[:3] == ["conn_sample"] * 2 + ["corr_sample"], emulator.kernels


#: (H, W, padding) for corr_mma: one 16-row block of a 56-wide plane (the X rows
#: shifted by a compile-time count, 16-byte loads), 7 x 22 planes (two planes in one
#: block of 16 rows; 4-byte pieces, narrowed: a piece cut by the row's end; planes of
#: at most 16 x 16 with padding K // 2 run the batch kernels), 9 x 28
#: (8-byte pieces, the last chunk half outside), several column tiles and segments with
#: asymmetric padding (value by value), padding 0 (X wider than G), padding wider than
#: a 16-column tile
CORR_MMA_SHAPES = [((13, 56), "same"), ((7, 22), "same"), ((9, 28), "same"),
                   ((37, 70), (1, 2)), ((11, 20), 0), ((9, 12), 10)]


def corr_mma_shapes(k: int) -> list[tuple[tuple[int, int], Any]]:
    """CORR_MMA_SHAPES for 3, 5, 7; for 13 and 31 (two and three blocks of 16 X columns, four
    and eleven groups of kernel rows): 13 x 56 (aligned X chunks, the diagonals offset by an
    even / odd count),
    7 x 14 (two planes a block of 16 rows), asymmetric padding over several column tiles,
    padding 0 (X wider than G: 10 columns of G), padding wider than a block."""
    if k <= 7:
        return CORR_MMA_SHAPES
    return [((13, 56), "same"), ((7, 14), "same"), ((37, 70), (1, 2)),
            ((k + 4, k + 9), 0), ((9, 12), k // 2 + 2)]


def check_position_specific(emulator: Any, k: int, dtype: torch.dtype, shapes: list, seed: str,
                            kernels: Callable[[int, int, int, int, torch.Tensor], None]) -> None:
    """conn2d / its transpose / corr2d with a position-specific weight on `shapes` (N,
    groups, channels a group, H, W, padding) against the reference, in every weight layout
    (contiguous, the attention layout's view, one weight the samples share, along rows
    only, rows padded by one value), channels_last, sliced and transposed x, with and
    without bias, Inf weights on taps that read the padding and NaN/Inf in x;
    `kernels(cpg, Ho, Wo, N, w)` checks the emulator's kernels of each case."""
    g = gen(seed, k, dtype)
    for N_, G_, cpg, H, W, pad in shapes:
        padding = {"same": k // 2, "wide": k // 2 + 2}.get(pad, pad) if isinstance(pad, str) \
            else pad
        kw = window_kwargs("sliding", 1, padding)
        Ho, Wo = out_size((H, W), (k, k), kw)
        C_ = G_ * cpg
        x = rand((N_, C_, H, W), g, dtype)
        weights = [
            (rand((N_, G_, k, k, Ho, Wo), g, dtype), "contiguous"),
            (rand((N_, G_, Ho, Wo, k, k), g, dtype).permute(0, 1, 4, 5, 2, 3), "attention"),
            (rand((1, G_, k, k, Ho, Wo), g, dtype), "Nw=1"),
            (rand((N_, G_, k, k, Ho, 1), g, dtype), "rows only"),
            # rows one value longer: for odd Wo every stride even (conn_pos_mma loads
            # column pairs, the last column alone)
            (rand((N_, G_, k, k, Ho, Wo + 1), g, dtype)[..., :Wo], "padded rows"),
        ]
        poisoned = rand((N_, G_, k, k, Ho, Wo), g, dtype)
        poisoned[0, 0, 0, 0, 0, 0] = float("inf")  # tap (0, 0) of output (0, 0): the padding
        poisoned[-1, -1, k - 1, k - 1, Ho - 1, Wo - 1] = float("-inf")
        # the transpose's neighbours of taps past g's left and right edges (kernel row ph:
        # x-bar's row = g's): clamped there, they must add nothing
        ph = min(padding if isinstance(padding, int) else padding[0], k - 1)
        poisoned[0, 0, ph, k - 1, 0, 0] = float("inf")
        poisoned[-1, -1, ph, 0, Ho - 1, Wo - 1] = float("-inf")
        xp = x.clone()
        xp[0, 0, H // 2, W // 2] = float("nan")
        xp[-1, -1, 0, W - 1] = float("inf")
        cases = [(x, w, what) for w, what in weights] + [
            (x.contiguous(memory_format=torch.channels_last), weights[0][0], "channels_last x"),
            (rand((N_, C_, H, W + 1), g, dtype)[..., 1:], weights[0][0], "sliced x"),
            (rand((N_, C_, W, H), g, dtype).transpose(2, 3), weights[0][0], "transposed x"),
            (xp, poisoned, "non-finite")]
        for xs, w, what in cases:
            if N_ > 1000 and what not in ("contiguous", "non-finite"):
                continue  # many batches: two cases are enough (the emulator's time)
            bias = rand((C_,), g, dtype) if what != "Nw=1" else None
            if emulator is not None:
                emulator.kernels.clear()
            check(xs, w, bias, kw, f"{k}x{k} {what} N={N_} G={G_} cpg={cpg} {H}x{W} p={pad}")

            if emulator is not None:
                kernels(cpg, Ho, Wo, N_, w)


#: conn_pos.cuh's shapes: (N, groups, channels a group, H, W, padding). Widths of outputs a
#: multiple of 4 (4-value weight loads), even (2-value) and odd (one by one), each with a
#: strip cut by the plane's edge where the width is not a multiple of 4; several groups a
#: block (small planes, the last block's groups past the batch); 9 and 17 channels a group
#: (two and three slices of uneven runs); 1 channel a group; rows in two tiles (37); one
#: column tile of 8 strips over a width of 30; asymmetric and wide padding; 40 channels a
#: group (conn_pos: 8 slices; corr_pos: staged in two runs).
POS_SHAPES = [(3, 3, 3, 8, 12, "same"), (2, 2, 9, 10, 10, "same"), (2, 1, 17, 7, 7, "same"),
              (1, 2, 1, 37, 30, "same"), (2, 2, 2, 9, 11, (1, 2)), (5, 3, 2, 5, 6, "wide"),
              (1, 1, 40, 14, 14, "same")]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_position_specific_strips(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """conn2d with a position-specific weight (involution, inhomogeneous dynamic
    depth-wise) on a K x K sliding window, stride 1, and its transpose: conn_pos
    (POS_SHAPES; the transpose's taps past g's edge add exactly 0), and corr2d to such a
    weight for every sample and position (its gradient): corr_pos, in every
    layout and weight layout: the contiguous (N, G, K, K, H, W) weight, the attention
    layout's view, one weight the samples share, one position-specific along rows only;
    channels_last, sliced and transposed x (rows of stride 1 or not); with and without bias; Inf weights on taps that read the
    padding and NaN/Inf in x (NaN where the reference has it)."""
    def kernels(cpg: int, Ho: int, Wo: int, N_: int, w: torch.Tensor) -> None:
        # 16-bit planes of at most 16 x 16 with 8 channels a group: tensor cores
        mma = dtype != torch.float32 and max(Ho, Wo) <= 16 and cpg >= 8
        first = "conn_pos_mma" if mma else "conn_pos"
        assert emulator.kernels[:2] == [first, "conn_pos"], emulator.kernels
        full = w.shape[0] == N_ and w.shape[5] == Wo  # corr2d's result: every position
        assert (emulator.kernels[-1] == "corr_pos") == full, emulator.kernels

    check_position_specific(emulator, k, dtype, POS_SHAPES, "cuda-pos", kernels)


#: conn_pos_mma.cuh's shapes: (N, groups, channels a group, H, W, padding): the DWNet-T
#: stage-3 plane (two column tiles, the last partial; a partial N tile); the stage-4 plane
#: (three N tiles, an odd row pair); two groups a block with the last block's second group
#: past the batch; 40 channels a group (two passes of N tiles); 9 channels (channels 9..15
#: of the second N tile clamped); wide and asymmetric padding; no padding; 16 x 16; 8195
#: groups of 2 x 3 planes (eight a batch, two batches a block: the zeros staged once, the
#: last block's second batch past the end).
POS_MMA_SHAPES = [(2, 2, 12, 14, 14, "same"), (2, 1, 24, 7, 7, "same"), (5, 1, 8, 5, 6, "same"),
                  (1, 1, 40, 9, 10, "same"), (2, 1, 9, 9, 11, "wide"), (1, 2, 8, 12, 13, (1, 2)),
                  (1, 1, 8, 14, 15, 0), (1, 1, 16, 16, 16, "same"), (8195, 1, 8, 2, 3, "same")]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_position_specific_tensor_cores(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """conn2d with a position-specific weight on tensor cores (conn_pos_mma: 16-bit output
    planes of at most 16 x 16, at least 8 channels a group) against the reference, for
    every weight layout (contiguous, the attention layout's view, one weight the samples
    share, position-specific along rows only), channels_last, sliced and transposed x, with
    and without bias; NaN/Inf in x and Inf weights on taps that read the padding (the
    warp's direct path: NaN exactly where the reference has it). The transpose and corr2d
    run conn_pos / corr_pos (checked too)."""
    def kernels(cpg: int, Ho: int, Wo: int, N_: int, w: torch.Tensor) -> None:
        assert emulator.kernels[:2] == ["conn_pos_mma", "conn_pos"], emulator.kernels

    check_position_specific(emulator, k, dtype, POS_MMA_SHAPES, "cuda-pos-mma", kernels)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7, 13, 31])
def test_weight_grad_tensor_cores(emulator: Any, k: int, dtype: torch.dtype,
                                  monkeypatch: pytest.MonkeyPatch,
                                  request: pytest.FixtureRequest) -> None:
    """The 16-bit NCHW K x K depth-wise weight gradient runs corr_mma (ldmatrix.trans and
    mma.sync, diagonal sums of X^T G): aligned, sliced (misaligned rows) and narrowed
    views, static and dynamic weights, parts of a result split over warps (forced, or
    planned for an H200's 132 multiprocessors) or not, odd batch sizes (a last half with
    no work); narrowed rows (16-byte aligned, cut inside a chunk) for X and G."""
    g = gen("cuda-corr-mma", k, dtype)
    for (H, W), pad in corr_mma_shapes(k):
        padding = k // 2 if pad == "same" else pad
        kw = window_kwargs("sliding", 1, padding)
        for nw, splits, sms in ((1, 0, 1), (3, 0, 1), (1, 2, 1), (1, 0, 132)):
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
            if emulator is not None:
                emulator.plan_for_sms(sms)
                request.addfinalizer(lambda: emulator.plan_for_sms(1))
            x = rand((3, 2, H, W), g, dtype)
            w = rand((nw, 2, k, k, 1, 1), g, dtype)
            views = ((x, "aligned"), (x[..., 1:], "sliced"), (x[..., :-3], "narrowed"))
            for xs, what in views if (nw, splits, sms) == (1, 0, 1) else views[:1]:
                grad = None
                if what == "narrowed":  # G narrowed too: rows cut inside a 16-byte chunk
                    ho, wo = out_size(tuple(xs.shape[2:]), (k, k), kw)
                    grad = rand((3, 2, ho, wo + 3), g, dtype)[..., :-3]
                if emulator is not None:
                    emulator.kernels.clear()
                    emulator.rare_paths()
                check(xs, w, None, kw, f"{k}x{k} {what} {H}x{W} p={pad} Nw={nw} splits={splits}",
                      g=grad)
                if emulator is not None:  # (per-sample results of 7 x 14 planes: corr_sample)
                    assert emulator.kernels[-1] == corr_kernel(dtype, k, xs, padding, nw == 1), \
                        emulator.kernels
                    # finite data: corr_taps_mma's sums, not its exact fallback (which would
                    # hide a wrong staging: unwritten shared memory reads as NaN)
                    assert k <= 7 or emulator.rare_paths() == 0, "the fallback ran"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 5, 7, 13, 31])
def test_weight_grad_tensor_cores_channels_last(emulator: Any, k: int, dtype: torch.dtype,
                                                monkeypatch: pytest.MonkeyPatch,
                                                request: pytest.FixtureRequest) -> None:
    """The 16-bit channels_last weight gradient runs corr_mma_cl (a block of 8 channels
    staging pixels' 16-byte channel groups for corr_mma's products; 13 and 31:
    corr_taps_mma_cl, the same staging for corr_taps_mma's products): one and two blocks
    of channels, views sliced or narrowed along the row (pixels still aligned), static and
    dynamic weights (on planes under 14 x 14: corr_sample where it fits, else the strips),
    parts split over blocks
    (forced, or planned for 132 multiprocessors) or not, odd batch sizes; an Inf in X and
    a NaN in G (their channels' warps take the direct path)."""
    g = gen("cuda-corr-mma-cl", k, dtype)
    cl_kernel = "corr_taps_mma_cl" if k > 7 else "corr_mma_cl"  # (13, 31: the taps as M)
    shapes = corr_mma_shapes(k) if dtype == torch.float16 else corr_mma_shapes(k)[:1]
    for (H, W), pad in shapes:
        padding = k // 2 if pad == "same" else pad
        kw = window_kwargs("sliding", 1, padding)
        for nw, C_, splits, sms in ((1, 8, 0, 1), (3, 8, 0, 1), (1, 16, 2, 1), (1, 8, 0, 132)):
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
            if emulator is not None:
                emulator.plan_for_sms(sms)
                request.addfinalizer(lambda: emulator.plan_for_sms(1))
            x = rand((3, C_, H, W), g, dtype, cl=True)
            w = rand((nw, C_, k, k, 1, 1), g, dtype)
            views = ((x, "dense"), (x[..., 1:], "sliced"), (x[..., :-3], "narrowed"))
            for xs, what in views if (nw, splits, sms) == (1, 0, 1) else views[:1]:
                ho, wo = out_size(tuple(xs.shape[2:]), (k, k), kw)
                grad = rand((3, C_, ho, wo + 3), g, dtype, cl=True)[..., 1:-2]
                if emulator is not None:
                    emulator.kernels.clear()
                    emulator.rare_paths()
                check(xs, w, None, kw,
                      f"{k}x{k} cl {what} {H}x{W} p={pad} Nw={nw} C={C_} splits={splits}", g=grad)
                if emulator is not None:  # (per-sample results of planes under 14 x 14:
                    # corr_sample (up to 16 x 16, padding K // 2), the strips, or register
                    # rows for 13 and 31)
                    mine = nw == 1 or min(ho, wo) >= 14
                    other = "corr_strip" if k <= 7 else "corr_rows"
                    if corr_kernel(dtype, k, xs, padding, nw == 1) == "corr_sample":
                        other = "corr_sample"
                    taps = k > 7 or (k == 7 and nw > 1 and 16 < wo <= 32)  # (7: per sample)
                    want = ("corr_taps_mma_cl" if taps else cl_kernel) if mine else other
                    assert emulator.kernels[-1] == want, emulator.kernels
                    assert not taps or emulator.rare_paths() == 0, "the fallback ran"
    H, W = 13 + k, 33 + k
    x = rand((2, 8, H, W), g, dtype, cl=True)
    x[0, 1, H - 1, 17] = float("inf")
    grad = rand((2, 8, H - k + 1, W - k + 1), g, dtype, cl=True)
    grad[1, 6, 3, 5] = float("nan")
    if emulator is not None:
        emulator.kernels.clear()
        emulator.rare_paths()
    check(x, rand((1, 8, k, k, 1, 1), g, dtype), None, window_kwargs("sliding", 1, 0),
          f"{k}x{k} cl corr non-finite", g=grad)
    if emulator is not None:
        assert emulator.kernels[-1] == cl_kernel, emulator.kernels
        assert k <= 7 or emulator.rare_paths() > 0, "no warp took the exact fallback"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_weight_grad_per_sample_taps_channels_last(emulator: Any, dtype: torch.dtype,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   request: pytest.FixtureRequest) -> None:
    """The 16-bit channels_last 7 x 7 weight gradient with a filter per sample on planes
    17..32 wide runs corr_taps_mma_cl (one column tile of 32, bands of 8 X rows): the
    paper's 28 x 28 stage (a last band half full), odd sizes, padding 0 and asymmetric
    padding, one and two blocks of 8 channels, views sliced along the row, splits forced
    or planned for 132 multiprocessors, an odd batch; finite data never takes the exact
    fallback, an Inf in X and a NaN in G do (their warps only) and still match."""
    g = gen("cuda-corr-taps-sample", dtype)
    k = 7
    shapes = [((28, 28), 3), ((19, 23), 3), ((20, 30), 0), ((22, 25), (1, 2))]
    for (H, W), padding in shapes:
        kw = window_kwargs("sliding", 1, padding)
        for C_, splits, sms in ((8, 0, 1), (16, 2, 1), (8, 0, 132)):
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
            if emulator is not None:
                emulator.plan_for_sms(sms)
                request.addfinalizer(lambda: emulator.plan_for_sms(1))
            x = rand((3, C_, H, W + 1), g, dtype, cl=True)
            for xs, what in ((x[..., :-1], "dense"), (x[..., 1:], "sliced")):
                ho, wo = out_size(tuple(xs.shape[2:]), (k, k), kw)
                assert 16 < wo <= 32 and ho >= 14, (ho, wo)
                grad = rand((3, C_, ho, wo + 1), g, dtype, cl=True)[..., 1:]
                if emulator is not None:
                    emulator.kernels.clear()
                    emulator.rare_paths()
                check(xs, rand((3, C_, k, k, 1, 1), g, dtype), None, kw,
                      f"7x7 per-sample cl {what} {H}x{W} p={padding} C={C_} splits={splits}",
                      g=grad)
                if emulator is not None:
                    assert emulator.kernels[-1] == "corr_taps_mma_cl", emulator.kernels
                    assert emulator.rare_paths() == 0, "the fallback ran"
    monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", 0)
    x = rand((2, 8, 28, 28), g, dtype, cl=True)
    x[0, 1, 27, 17] = float("inf")  # channel 1 of sample 0: the last row
    grad = rand((2, 8, 28, 28), g, dtype, cl=True)
    grad[1, 6, 0, 5] = float("nan")  # channel 6 of sample 1: G's first row
    if emulator is not None:
        emulator.kernels.clear()
        emulator.rare_paths()
    check(x, rand((2, 8, k, k, 1, 1), g, dtype), None, window_kwargs("sliding", 1, 3),
          "7x7 per-sample cl non-finite", g=grad)
    if emulator is not None:
        assert emulator.kernels[-1] == "corr_taps_mma_cl", emulator.kernels
        assert emulator.rare_paths() > 0, "no warp took the exact fallback"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("k", [3, 7, 13, 31])
def test_weight_grad_tensor_cores_non_finite(emulator: Any, k: int, dtype: torch.dtype) -> None:
    """corr_mma multiplies G's zeros past its edges by staged X values: an Inf in X that
    only those would read (padding 0: the last row and column) must leave the other taps
    finite, a NaN in G makes its taps NaN, and the results without either stay on
    tensor cores and match (13, 31: only some of a result's row groups see the Inf)."""
    g = gen("cuda-corr-mma-inf", k, dtype)
    H, W = 13 + k, 33 + k
    x = rand((2, 4, H, W), g, dtype)
    x[0, 1, H - 1, 17] = float("inf")  # the last row (padding 0)
    x[1, 1, 6, W - 1] = float("-inf")  # the last column
    for pad in (0, k // 2):
        ho, wo = H + 2 * pad - k + 1, W + 2 * pad - k + 1
        gy = rand((2, 4, ho, wo), g, dtype)
        # G's first row (channel 2) and last row (channel 3): with padding, their taps of
        # the first (last) kernel rows read only the padding (NaN times zero: every tap
        # NaN); channel 0 stays on tensor cores
        gy[1, 2, 0, wo // 2] = float("nan")
        gy[0, 3, ho - 1, wo // 3] = float("nan")
        if emulator is not None:
            emulator.kernels.clear()
            emulator.rare_paths()
        check(x, rand((1, 4, k, k, 1, 1), g, dtype), None, window_kwargs("sliding", 1, pad),
              f"{k}x{k} corr non-finite p={pad}", g=gy)
        if emulator is not None:
            assert emulator.kernels[-1] == ("corr_taps_mma" if k > 7 else "corr_mma"), \
                emulator.kernels
            assert k <= 7 or emulator.rare_paths() > 0, "no warp took the exact fallback"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("k", [3, 7])
def test_strip_overhang_skips_products(k: int) -> None:
    """corr2d on strips that overhang the output's right and bottom edges: their missing
    outputs add nothing, so an Inf in b that only they would read leaves the taps finite."""
    g = gen("cuda-strip-overhang", k)
    x = rand((1, 2, 9, 13), g)  # padding 0: 13 - k + 1 outputs a row, 9 - k + 1 rows
    x[0, 1, 4, 12] = float("inf")  # the last column
    x[0, 0, 8, 5] = float("inf")  # the last row
    check(x, rand((1, 2, k, k, 1, 1), g), None, window_kwargs("sliding", 1, 0), "overhang inf")


# ------------------------------------------------------------- layouts, dtypes, paper modes

@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("mode", LAYOUT_MODES)
def test_layouts_and_dtypes(mode: str, dtype: torch.dtype, cl: bool) -> None:
    """NCHW and channels_last (output keeps the format) in float32/16 and bfloat16."""
    x, w, bias, kw = paper_case(mode, dtype, cl, gen("cuda-layout", mode, dtype, cl))
    check(x, w, bias, kw, f"{mode} {dtype} cl={cl}")


def test_float64_matches_oracle() -> None:
    """float64 (accumulating in float64) meets the float64 tolerance against the oracle."""
    check_float64_against_oracle(CUDA, gen("cuda-f64"))


# ------------------------------------------------------------------- weight views, inputs


def test_weight_views_need_no_copy() -> None:
    """Permuted, expanded (stride 0), transposed-kernel and sliced weights."""
    x, kw, views = weight_views(gen("cuda-views"))
    for name, w in views.items():
        check(x, w, None, kw, f"weight view {name}")


def test_noncontiguous_inputs() -> None:
    """Strided views of x and g, a transposed x, and an expanded (stride 0) gradient."""
    g = gen("cuda-noncontig")
    x = rand((2, 6, 14, 17), g)[:, :, 1::2, ::2]
    w = rand((2, 3, 3, 3, 7, 9), g)
    kw = window_kwargs("sliding", 1, 1)
    check(x, w, None, kw, "strided x")
    check(x, w, None, kw, "expanded g", g=torch.ones((), device=DEVICE).expand(2, 6, 7, 9))
    check(x.transpose(2, 3), w.transpose(4, 5), None, kw, "transposed x")
    wdw = rand((1, 6, 5, 5, 1, 1), g)
    check(x, wdw, None, window_kwargs("sliding", 1, 2), "strided x, fixed 5x5")


@pytest.mark.parametrize(
    "window,kernel,in_size,padding",
    [("sliding", (3, 31), (5, 36), (1, 15)), ("neighborhood", (3, 31), (5, 33), 0),
     ("sliding", (31, 31), (6, 7), 15), ("neighborhood", (9, 9), (9, 30), 0)],
    ids=["sliding-3x31", "neighborhood-3x31", "sliding-31x31", "neighborhood-9x9"],
)
def test_large_kernels(window: str, kernel: tuple[int, int], in_size: tuple[int, int],
                       padding: Any) -> None:
    """Large and non-square kernels: run-time paths and the 31x31 fast path."""
    g = gen("cuda-large", window, kernel)
    kw = window_kwargs(window, 1, padding)
    out = out_size(in_size, kernel, kw)
    x = rand((1, 2) + in_size, g)
    check(x, rand((1, 2) + kernel + (1, 1), g), None, kw, f"{window} {kernel} dw")
    check(x, rand((1, 1) + kernel + out, g), None, kw, f"{window} {kernel} shared")


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients(case: str, cl: bool) -> None:
    """Autograd of the layer (x, weight, bias) and a double backward: cuda vs reference."""
    shape, kw, in_size = GRAD_CASES[case]
    g = gen("cuda-grad", case, cl)
    x, w, bias = rand((2, 6) + in_size, g, cl=cl), rand(shape, g), rand((6,), g)
    out = out_size(in_size, shape[2:4], kw)
    go, v = rand((2, 6) + out, g, cl=cl), rand((2, 6) + in_size, g, cl=cl)
    scale = corr_scale(corr_terms(shape, 2, 6, out))
    results = {}
    for backend in (CUDA, "reference"):
        leaves = [t.detach().requires_grad_() for t in (x, w, bias)]
        y = localconn.local_conn2d(*leaves, backend=backend, **kw)
        grads = torch.autograd.grad((y * go).sum(), leaves, create_graph=True)
        second = torch.autograd.grad((grads[0] * v).sum(), leaves[1])
        results[backend] = [*grads, *second]
    names = ("x", "weight", "bias", "weight of d/dx")
    for name, a, b in zip(names, results[CUDA], results["reference"]):
        assert_close(a, b, what=f"{case}: grad {name}", scale=scale)


# ------------------------------------------------- corr2d split reduction, determinism


@pytest.mark.parametrize("splits", [2, 5, 40])
@pytest.mark.parametrize("shape", [(1, 6, 3, 3, 1, 1), (6, 6, 3, 3, 1, 1), (1, 3, 3, 3, 9, 10),
                                   (6, 1, 3, 3, 1, 10)],
                         ids=["static-dw", "dynamic-dw", "static-grouped-positions",
                              "dynamic-shared-rows"])
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
def test_corr_split_reduction(monkeypatch: pytest.MonkeyPatch, shape: tuple, splits: int,
                              cl: bool) -> None:
    """Forced split counts (more than the reduction's steps: capped), bitwise reproducible."""
    monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)
    g = gen("cuda-splits", shape, splits, cl)
    a, b = rand((6, 6, 9, 10), g, cl=cl), rand((6, 6, 9, 10), g, cl=cl)
    kw = window_kwargs("sliding", 1, 1)
    got = localconn.local_corr2d(a, b, shape, backend=CUDA, **kw)
    ref = localconn.local_corr2d(a, b, shape, backend="reference", **kw)
    assert_close(got, ref, what=f"corr2d with {splits} splits",
                 scale=corr_scale(corr_terms(shape, 6, 6, (9, 10))))
    again = localconn.local_corr2d(a, b, shape, backend=CUDA, **kw)
    assert torch.equal(got, again), "corr2d is not bitwise reproducible"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_inf_propagate_like_reference() -> None:
    """NaN/Inf in inputs and in weights of taps that read padding: same pattern as reference."""
    x, w, wdw, kw = nan_inf_inputs(gen("cuda-naninf"))
    check(x, w, None, kw, "nan/inf position weights")
    check(x, wdw, None, kw, "nan/inf depth-wise")
    check(x.contiguous(memory_format=torch.channels_last), wdw, None, kw,
          "nan/inf depth-wise channels_last")
    check(x, wdw[:, :, :, :2].contiguous(), None, window_kwargs("sliding", 1, (1, 0)),
          "nan/inf depth-wise run-time path")


# ------------------------------------------------------------- which kernel runs


def test_every_kernel_of_the_plan_runs(emulator: Any) -> None:
    """Each kernel of csrc/plan.h is chosen where the plan says (emulator records them)."""
    if emulator is None:
        pytest.skip("the kernel record is the emulator's (the GPU runs the same plans)")
    g = gen("cuda-kernels")
    cases = [
        # kernels of conn2d, conn2d_transpose, corr2d: (x, weight, kw)
        (("conn_band_cl", "conn_band_cl", "corr_band"),  # (float32 NCHW: across a band)
            (rand((2, 3, 9, 10), g), rand((1, 3, 3, 3, 1, 1), g), window_kwargs("sliding", 1, 1))),
        (("conn_band", "conn_band", "corr_strip"),  # (float32 rows past 64: planes' band)
            (rand((2, 3, 5, 70), g), rand((1, 3, 3, 3, 1, 1), g), window_kwargs("sliding", 1, 1))),
        (("conn_strip", "conn_strip", "corr_strip"),
            (rand((2, 3, 9, 10), g), rand((1, 3, 3, 3, 1, 1), g),
             window_kwargs("sliding", 1, (1, 2)))),
        (("conn_band", "conn_strip", "corr_mma"),  # (17 columns: past conn_sample's 16)
            (rand((2, 3, 9, 17), g, torch.float16), rand((2, 3, 3, 3, 1, 1), g, torch.float16),
             window_kwargs("sliding", 1, 1))),
        (("conn_sample", "conn_sample", "corr_sample"),
            (rand((2, 3, 9, 10), g, torch.float16), rand((2, 3, 3, 3, 1, 1), g, torch.float16),
             window_kwargs("sliding", 1, 1))),
        (("conn_reg", "conn_reg", "corr_reg"),  # (float32, 7 columns)
            (rand((3, 3, 9, 7), g, torch.float32), rand((1, 3, 5, 5, 1, 1), g, torch.float32),
             window_kwargs("sliding", 1, 2))),
        (("conn_batch_large", "conn_batch_large", "corr_batch_large"),  # (past 16 x 16)
            (rand((3, 3, 9, 20), g, torch.bfloat16), rand((1, 3, 5, 5, 1, 1), g, torch.bfloat16),
             window_kwargs("sliding", 1, 2))),
        (("conn_batch_wide", "conn_batch_wide", "corr_batch_wide"),
            (rand((17, 3, 14, 9), g, torch.float16), rand((1, 3, 7, 7, 1, 1), g, torch.float16),
             window_kwargs("sliding", 1, 3))),
        (("conn_batch", "conn_batch", "corr_batch"),
            (rand((17, 9, 7, 7), g, torch.bfloat16, cl=True),
             rand((1, 9, 5, 5, 1, 1), g, torch.bfloat16), window_kwargs("sliding", 1, 2))),
        (("conn_wide", "conn_wide", "corr_tile"),  # 15 x 15 pixels: not 16 bytes
            (rand((1, 2, 15, 15), g), rand((1, 2, 13, 13, 1, 1), g),
             window_kwargs("sliding", 1, 6))),
        (("conn_wide", "conn_wide", "corr_pixels"),
            (rand((1, 2, 15, 16), g), rand((1, 2, 13, 13, 1, 1), g),
             window_kwargs("sliding", 1, 6))),
        (("conn_tile_fixed", "conn_tile_fixed", "corr_tile"),  # column padding not 13 // 2
            (rand((1, 2, 15, 15), g), rand((1, 2, 13, 13, 1, 1), g),
             window_kwargs("sliding", 1, (6, 4)))),
        (("conn_tile", "conn_tile", "corr_tile"),
            (rand((2, 3, 9, 10), g), rand((1, 3, 3, 2, 1, 1), g), window_kwargs("sliding", 1, 1))),
        (("conn_tile", "conn_elem", "corr_elem"),
            (rand((2, 4, 7, 8), g), rand((2, 2, 3, 3, 7, 8), g), window_kwargs("neighborhood"))),
        (("conn_pos", "conn_pos", "corr_pos"),
            (rand((2, 4, 7, 8), g), rand((2, 2, 3, 3, 7, 8), g), window_kwargs("sliding", 1, 1))),
        (("conn_strip", "conn_strip", "corr_strip"),
            (rand((2, 4, 7, 9), g, cl=True), rand((2, 4, 5, 5, 1, 1), g),
             window_kwargs("sliding", 1, (2, 3)))),
        (("conn_band_cl", "conn_band_cl", "corr_band"),
            (rand((2, 4, 7, 9), g, cl=True), rand((2, 4, 5, 5, 1, 1), g),
             window_kwargs("sliding", 1, 2))),
        (("conn_mma_cl", "conn_mma_cl", "corr_mma_cl"),  # (16 x 40: tiles of 32 half empty)
            (rand((2, 8, 16, 40), g, torch.float16, cl=True),
             rand((1, 8, 3, 3, 1, 1), g, torch.float16), window_kwargs("sliding", 1, 1))),
        (("conn_rows", "conn_rows", "corr_rows"),  # 6 channels: pixels not 16 bytes
            (rand((1, 6, 15, 14), g, cl=True), rand((1, 6, 13, 13, 1, 1), g),
             window_kwargs("sliding", 1, 6))),
        (("conn_planes", "conn_planes", "corr_rows"),
            (rand((1, 4, 15, 14), g, cl=True), rand((1, 4, 13, 13, 1, 1), g),
             window_kwargs("sliding", 1, 6))),
        (("conn_elem", "conn_elem", "corr_lanes"),
            (rand((2, 4, 7, 8), g, cl=True), rand((1, 4, 3, 2, 1, 1), g),
             window_kwargs("sliding", 1, 1))),
    ]
    for expected, (x, w, kw) in cases:
        emulator.kernels.clear()
        check(x, w, None, kw, f"plan {expected}")
        assert tuple(emulator.kernels) == expected, (expected, emulator.kernels)


DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


#: conn_wide.cuh's shapes, float32 (N, C, H, W, row padding; the column padding is K // 2):
#: several planes a block, a plane in two bands of rows (70 rows of 5 strips), a row's last
#: strip cut by the edge (W % 8 != 0), rows padded less and more than K // 2; 4 channels:
#: channels_last pixels of 16 bytes (through planes), else not (conn_rows on the pixels)
WIDE_SHAPES = [(3, 4, 9, 11, "same"), (1, 2, 70, 40, "same"), (2, 3, 30, 17, 2),
               (1, 4, 12, 9, "wide")]


@pytest.mark.parametrize("k", [13, 31])
def test_wide_float32(emulator: Any, k: int) -> None:
    """conn_wide (float32 13x13 / 31x31 on a staged band, a strip of 8 outputs a thread)
    for conn2d and the flipped conn2d_transpose on WIDE_SHAPES: a filter the samples share
    and per-sample filters, a bias, a column slice and a transposed x (rows of stride 1 or
    not), NaN / Inf in x and an Inf filter tap (the transpose's taps outside g must add
    exactly 0); channels_last x goes through planes to the same kernel where its pixels
    are 16 bytes."""
    g = gen("cuda-wide", k)
    # (the bands at 13 x 13 only: at 31 x 31 corr2d's 2800-term sums of that plane sit at
    # the float32 tolerance's edge, a check of corr2d, not of conn_wide)
    for N_, C_, H, W, pad in WIDE_SHAPES if k == 13 else WIDE_SHAPES[:1] + WIDE_SHAPES[2:]:
        ph = {"same": k // 2, "wide": k // 2 + 3}.get(pad, pad) if isinstance(pad, str) else pad
        kw = window_kwargs("sliding", 1, (ph, k // 2))
        x = rand((N_, C_, H, W), g)
        xp = x.clone()
        xp[0, 0, H // 2, W // 2] = float("nan")
        xp[-1, -1, 0, W - 1] = float("inf")
        w_inf = rand((1, C_, k, k, 1, 1), g)
        w_inf[0, 0, 0, 0] = float("inf")
        w_inf[0, -1, k - 1, k // 2] = float("-inf")
        cases = [
            (x, rand((1, C_, k, k, 1, 1), g), "shared", "conn_wide"),
            (x, rand((N_, C_, k, k, 1, 1), g), "per-sample", "conn_wide"),
            (rand((N_, C_, H, W + 1), g)[..., 1:], rand((1, C_, k, k, 1, 1), g), "sliced x",
             "conn_wide"),
            (rand((N_, C_, W, H), g).transpose(2, 3), rand((1, C_, k, k, 1, 1), g),
             "transposed x", "conn_wide"),
            (xp, w_inf, "non-finite", "conn_wide"),
            (x.contiguous(memory_format=torch.channels_last), rand((1, C_, k, k, 1, 1), g),
             "channels_last x", "conn_planes" if C_ % 4 == 0 else "conn_rows"),
        ]
        for xs, w, what, kernel in cases:
            if emulator is not None:
                emulator.kernels.clear()
            check(xs, w, rand((C_,), g), kw, f"{k}x{k} {what} {N_}x{C_}x{H}x{W} pad={pad}")
            if emulator is not None:
                assert emulator.kernels[:2] == [kernel, kernel], (what, emulator.kernels)


@pytest.mark.parametrize("k", [13, 31])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16", "f64"])
def test_large_kernels_through_planes(emulator: Any, dtype: torch.dtype, k: int) -> None:
    """channels_last 13x13 / 31x31 conn2d and conn2d_transpose run on NCHW planes
    (planes.cuh in and out; conn_mma for 16-bit types, conn_tile else) unless the pixels
    have their own tensor-core kernel (16-bit 13x13 on planes of 14 x 14: conn_mma_cl;
    the transpose of the padding-0 case; 16-bit 31x31 at the centred lead too where the
    device lets a block have 110 KB, sm_90, which the emulator does not by default: see
    test_tensor_cores_channels_last): planes of a pixel
    count that is not a multiple of 16 bytes (padded planes), padding 'same', 0 and wider
    than the window's half, a bias, static and per-sample weights, and batches cut into
    chunks of samples (the last short; a per-sample weight offset by chunk). Pixels that
    are not 16 bytes (5 channels: conn_rows) or rows that are not dense (a column slice)
    stay off the planes."""
    if emulator is None:
        pytest.skip("the kernel record is the emulator's (the GPU runs the same plans)")
    g = gen("cuda-planes", dtype, k)
    V = 16 // torch.empty((), dtype=dtype).element_size()
    C_ = 2 * V
    geometries = ((k // 2, (k // 2 + 4, k // 2 + 3)), (0, (k + 2, k + 1)), (k // 2 + 2, (3, 5)))
    try:
        for pad, size in geometries:
            for nw, n, chunk in ((1, 2, 0), (5, 5, 2), (1, 3, 1)):
                x = rand((n, C_, *size), g, dtype, cl=True)
                w = rand((nw, C_, k, k, 1, 1), g, dtype)
                kw = window_kwargs("sliding", 1, pad)
                hw = out_size(size, (k, k), kw)
                px = [-(-a // V) * V for a in (size[0] * size[1], hw[0] * hw[1])]
                emulator.planes_budget(chunk * C_ * sum(px) * x.element_size())
                emulator.kernels.clear()
                check(x, w, rand((C_,), g, dtype), kw,
                      f"{k}x{k} pad={pad} Nw={nw} N={n} chunk={chunk or n} planes")
                # (16-bit 13 x 13 with a result plane of 14 x 14 at least: conn_mma_cl)
                own = [k == 13 and x.element_size() == 2 and min(plane) >= 14
                       for plane in (hw, size)]
                expect = ["conn_mma_cl" if o else "conn_planes" for o in own]
                assert emulator.kernels[:2] == expect, emulator.kernels
        emulator.planes_budget(0)
        x = rand((2, 5, k // 2 + 3, k // 2 + 4), g, dtype, cl=True)
        w = rand((1, 5, k, k, 1, 1), g, dtype)
        xs = rand((2, C_, k // 2 + 3, k // 2 + 5), g, dtype, cl=True)[..., :-1]
        ws = rand((1, C_, k, k, 1, 1), g, dtype)
        for xx, ww, what in ((x, w, "5 channels"), (xs, ws, "a column slice")):
            emulator.kernels.clear()
            check(xx, ww, None, window_kwargs("sliding", 1, k // 2), f"{k}x{k} {what}")
            assert "conn_planes" not in emulator.kernels, (what, emulator.kernels)
            assert what != "5 channels" or emulator.kernels[:2] == ["conn_rows"] * 2
    finally:
        emulator.planes_budget(0)


@pytest.mark.parametrize("k", [13, 31])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_weight_grad_through_pixels(emulator: Any, dtype: torch.dtype, k: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 / float64 NCHW 13x13 and 31x31 depth-wise weight gradients run corr_rows
    on channels_last pixels (planes.cuh puts a and b into a workspace): channel counts that
    are and are not a multiple of 16 bytes (padded pixels), paddings 'same', 0 and wider
    than the half window, static and per-sample weights, planned and forced split
    reductions (the partials after the pixels). Planes whose pixel count is not a whole
    16 bytes, or that are not dense (a column slice), stay on the planes' kernels."""
    if emulator is None:
        pytest.skip("the kernel record is the emulator's (the GPU runs the same plans)")
    g = gen("cuda-pixels", dtype, k)
    V = 16 // torch.empty((), dtype=dtype).element_size()
    # (whole 16 bytes of pixels in x and g: H W and Ho Wo multiples of V)
    cases = ((k // 2, (k // 2 + 3, 2 * V), 2 * V), (0, (k + 3, k - 1 + 2 * V), 3),
             (k // 2 + 2, (V, 3), 5))
    for pad, size, c in cases:
        for nw, splits in ((1, 0), (2, 3), (1, 2)):
            monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
            x = rand((2, c, *size), g, dtype)
            emulator.kernels.clear()
            check(x, rand((nw, c, k, k, 1, 1), g, dtype), None, window_kwargs("sliding", 1, pad),
                  f"{k}x{k} pad={pad} C={c} Nw={nw} splits={splits} pixels")
            assert emulator.kernels[2] == "corr_pixels", emulator.kernels
    monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", 0)
    odd = rand((2, 3, (k // 2 + 3) | 1, 2 * V + 1), g, dtype)
    sliced = rand((2, 3, k // 2 + 3, 2 * V + 1), g, dtype)[..., 1:]
    for x, what in ((odd, "odd pixels"), (sliced, "a column slice")):
        emulator.kernels.clear()
        check(x, rand((1, 3, k, k, 1, 1), g, dtype), None, window_kwargs("sliding", 1, k // 2),
              f"{k}x{k} {what}")
        assert "corr_pixels" not in emulator.kernels, (what, emulator.kernels)


@pytest.mark.parametrize("k", [13, 31])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_corr_rows_chunks_of_kernel_rows(emulator: Any, dtype: torch.dtype, k: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """channels_last depth-wise weight gradients of the large fixed sizes run corr_rows,
    with the kernel rows cut into chunks where all K x K sums would not fit the
    registers (13 = 3+3+3+3+1, the last chunk short; 31 one row each); static and
    dynamic weights, split reductions."""
    if emulator is None:
        pytest.skip("the kernel record is the emulator's (the GPU runs the same plans)")
    g = gen("cuda-corr-rows-chunks", dtype, k)
    size = (k // 2 + 3, k // 2 + 5)
    x = rand((2, 33, *size), g, dtype, cl=True)  # 33 channels: a second, partial channel tile
    for nw, splits in ((1, 0), (1, 3), (2, 2)):
        monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
        w = rand((nw, 33, k, k, 1, 1), g, dtype)
        emulator.kernels.clear()
        check(x, w, None, window_kwargs("sliding", 1, k // 2),
              f"{k}x{k} channels_last Nw={nw} splits={splits}")
        assert emulator.kernels[-1] == "corr_rows", emulator.kernels


@pytest.mark.parametrize("window,kernel,kw", [
    ("sliding", (3, 2), window_kwargs("sliding", 1, 1)),
    ("sliding", (5, 5), window_kwargs("sliding", 2, 2, 2)),
    ("sliding", (9, 9), window_kwargs("sliding", 1, 4)),
    ("neighborhood", (3, 5), window_kwargs("neighborhood", dilation=2)),
    ("block", (3, 3), window_kwargs("block")),
], ids=["3x2", "stride2-dil2", "9x9", "neighborhood", "block"])
def test_corr_lanes_any_window(emulator: Any, window: str, kernel: tuple, kw: dict,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """channels_last depth-wise weight gradients without a register path run corr_lanes:
    any window, stride, dilation; taps in chunks of 8 (9x9: 11 chunks, the last short);
    static and dynamic weights, with split reductions."""
    if emulator is None:
        pytest.skip("the kernel record is the emulator's (the GPU runs the same plans)")
    g = gen("cuda-corr-lanes", window, kernel)
    x = rand((2, 35, 9, 12), g, cl=True)  # 35 channels: a second, partial channel tile
    for nw, splits in ((1, 0), (1, 3), (2, 2)):
        monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)  # 0: the plan's own
        w = rand((nw, 35, *kernel, 1, 1), g)
        emulator.kernels.clear()
        check(x, w, None, kw, f"{window} {kernel} channels_last Nw={nw} splits={splits}")
        assert emulator.kernels[-1] == "corr_lanes", emulator.kernels


def test_sanitizer_run_covers_every_kernel(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases tests/sanitize_cuda.py gives compute-sanitizer on a GPU are right
    (against the reference) and together run every kernel of csrc/plan.h."""
    if emulator is None:
        pytest.skip("the kernel record is the emulator's (the GPU runs the same plans)")
    from sanitize_cuda import CASES

    from localconn.cuda_args import KERNEL_NAMES

    g = gen("cuda-sanitize-cases")
    emulator.kernels.clear()
    for splits, dtype in ((0, torch.float32), (3, torch.float32), (0, torch.float16)):
        monkeypatch.setattr(cuda_backend, "FORCE_SPLITS", splits)
        for name, xs, ws, kw, cl in CASES:  # (float16 NCHW: the tensor-core kernel)
            check(rand(xs, g, dtype, cl=cl), rand(ws, g, dtype), None,
                  {"window": "sliding", **kw}, f"sanitize case {name} splits={splits} {dtype}")
    assert set(emulator.kernels) == set(KERNEL_NAMES), set(KERNEL_NAMES) - set(emulator.kernels)


# ------------------------------------------------------------------------ GPU, real sizes

DWNET_STAGES = [(64, 96, 56, 56), (64, 192, 28, 28), (64, 384, 14, 14), (64, 768, 7, 7)]


def _gpu_check(x: torch.Tensor, w: torch.Tensor, kw: dict, what: str) -> None:
    """All three primitives on the GPU vs the reference on the same device."""
    check(x, w, None, kw, what)


@gpu
@needs_cuda
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("mode", ["static-dw", "dynamic-dw", "channel-shared"])
@pytest.mark.parametrize("shape", DWNET_STAGES, ids=[f"{s[1]}x{s[2]}" for s in DWNET_STAGES])
def test_gpu_dwnet_stages(shape: tuple, mode: str, cl: bool) -> None:
    """The DWNet-T stage shapes, 7x7, padding 3, float16."""
    N_, C_, H_, W_ = shape
    g = gen("cuda-gpu-dwnet", shape, mode, cl)
    x = rand(shape, g, torch.float16, cl)
    wshape = {"static-dw": (1, C_, 7, 7, 1, 1), "dynamic-dw": (N_, C_, 7, 7, 1, 1),
              "channel-shared": (N_, 32, 7, 7, H_, W_)}[mode]
    _gpu_check(x, rand(wshape, g, torch.float16), window_kwargs("sliding", 1, 3),
               f"{mode} {shape}")


@gpu
@needs_cuda
@pytest.mark.parametrize("k", [13, 31])
def test_gpu_large_kernels(k: int) -> None:
    """13x13 and 31x31 depth-wise and channel-shared at (64, 384, 32, 32)."""
    g = gen("cuda-gpu-large", k)
    x = rand((64, 384, 32, 32), g, torch.float16)
    kw = window_kwargs("sliding", 1, k // 2)
    _gpu_check(x, rand((1, 384, k, k, 1, 1), g, torch.float16), kw, f"dw k={k}")
    _gpu_check(x, rand((64, 12, k, k, 32, 32), g, torch.float16), kw, f"shared k={k}")


@gpu
@needs_cuda
def test_gpu_beyond_int32_offsets() -> None:
    """A tensor of more than 2^31 elements: checked on its last channels (depth-wise in
    the three primitives, a position-specific weight in conn2d and its transpose)."""
    C_, H_, W_ = 132, 4096, 4096
    assert C_ * H_ * W_ > 2**31
    gg = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn((1, C_, H_, W_), generator=gg, device="cuda", dtype=torch.float16)
    w = torch.randn((1, C_, 3, 3, 1, 1), generator=gg, device="cuda", dtype=torch.float16)
    kw = window_kwargs("sliding", 1, 1)
    tail = slice(C_ - 2, C_)
    y = localconn.local_conn2d(x, w, backend=CUDA, **kw)
    ref = localconn.local_conn2d(x[:, tail], w[:, tail], backend="reference", **kw)
    assert_close(y[:, tail], ref, what="conn2d beyond 2^31")
    xt = localconn.local_conn2d_transpose(y, w, (H_, W_), backend=CUDA, **kw)
    ref = localconn.local_conn2d_transpose(y[:, tail], w[:, tail], (H_, W_), backend="reference",
                                           **kw)
    assert_close(xt[:, tail], ref, what="conn2d_transpose beyond 2^31")
    del xt
    wc = localconn.local_corr2d(y, x, tuple(w.shape), backend=CUDA, **kw)
    ref = localconn.local_corr2d(y[:, tail].double(), x[:, tail].double(), (1, 2, 3, 3, 1, 1),
                                 backend="reference", **kw)
    assert_close(wc[:, tail], ref.half(), what="corr2d beyond 2^31", scale=corr_scale(H_ * W_))
    del wc, y
    # a position-specific weight (conn_pos: the image's planes past 2^31, 66 channels a group)
    wp = torch.randn((1, 2, 3, 3, H_, W_), generator=gg, device="cuda", dtype=torch.float16)
    yp = localconn.local_conn2d(x, wp, backend=CUDA, **kw)
    ref = localconn.local_conn2d(x[:, tail], wp[:, 1:], backend="reference", **kw)
    assert_close(yp[:, tail], ref, what="position-specific conn2d beyond 2^31")
    xt = localconn.local_conn2d_transpose(yp, wp, (H_, W_), backend=CUDA, **kw)
    ref = localconn.local_conn2d_transpose(yp[:, tail], wp[:, 1:], (H_, W_), backend="reference",
                                           **kw)
    assert_close(xt[:, tail], ref, what="position-specific conn2d_transpose beyond 2^31")


@gpu
@needs_cuda
@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
def test_gpu_corr_band_beyond_int32_offsets(cl: bool) -> None:
    """The float32 7x7 weight gradient on staged bands (corr_band: planes of at most 56
    columns, so past 2^31 elements by its channels and samples) on a 10 GB tensor, its
    last channels checked against the float64 reference."""
    N_, C_, H_, W_ = 2, 5 * 2**17, 56, 56
    assert N_ * C_ * H_ * W_ > 2**31
    gg = torch.Generator(device="cuda").manual_seed(0)
    fmt = torch.channels_last if cl else torch.contiguous_format
    x = torch.randn((N_, C_, H_, W_), generator=gg, device="cuda").contiguous(memory_format=fmt)
    g = torch.randn((N_, C_, H_, W_), generator=gg, device="cuda").contiguous(memory_format=fmt)
    kw = window_kwargs("sliding", 1, 3)
    tail = slice(C_ - 9, C_)
    wc = localconn.local_corr2d(g, x, (1, C_, 7, 7, 1, 1), backend=CUDA, **kw)
    ref = localconn.local_corr2d(g[:, tail].double(), x[:, tail].double(), (1, 9, 7, 7, 1, 1),
                                 backend="reference", **kw)
    assert_close(wc[:, tail], ref.float(), what=f"corr_band beyond 2^31 cl={cl}",
                 scale=corr_scale(N_ * H_ * W_))


# ------------------------------------------------------------------ torch.compile


def test_compile_fullgraph_runs_the_cuda_backend(emulator: Any) -> None:
    """A layer and its backward under torch.compile(fullgraph=True) on this backend."""
    g = gen("cuda-compile")
    x = rand((2, 6, 7, 8), g).requires_grad_()
    w = rand((1, 6, 3, 3, 1, 1), g).requires_grad_()

    def layer(x_: torch.Tensor, w_: torch.Tensor) -> torch.Tensor:
        return localconn.local_conn2d(x_, w_, padding=1, backend=CUDA).relu()

    if emulator is not None:
        emulator.kernels.clear()
    y = torch.compile(layer, fullgraph=True, backend="aot_eager")(x, w)
    y.sum().backward()
    ref_x, ref_w = x.detach().requires_grad_(), w.detach().requires_grad_()
    ref = localconn.local_conn2d(ref_x, ref_w, padding=1, backend="reference").relu()
    ref.sum().backward()
    assert_close(y, ref, what="compiled forward")
    assert_close(x.grad, ref_x.grad, what="compiled grad x", scale=2)
    assert_close(w.grad, ref_w.grad, what="compiled grad weight", scale=corr_scale(2 * 56))
    if emulator is not None:  # forward, input gradient, weight gradient: all on csrc/ kernels
        assert len(emulator.kernels) == 3, emulator.kernels

