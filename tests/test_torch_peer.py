"""The model's peer row: PyTorch's native depth-wise kernels (perfmodel/torch_native.py).

Without a CUDA build of PyTorch (CI) the pieces are checked on inputs whose answers
are known: the SASS parser on an internal-linkage kernel (PyTorch's are in an
anonymous namespace: no ``.global``), loop depths, the in-bounds tap counts against
localconn's own window tables, the instance PyTorch's dispatch picks, the rows it
declines and the speed-up table. With ``LOCALCONN_TORCH_CUDA_LIB`` (or a CUDA
PyTorch) the whole row is costed and its multiply count checked.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("scipy")

from benchmarks.cases import Case  # noqa: E402
from localconn.geometry import make_geometry  # noqa: E402
from perfmodel import report, sass, torch_native  # noqa: E402
from perfmodel.workload import works  # noqa: E402

# an internal-linkage kernel (only .type), a loop nest, and a 64-bit division subroutine
LISTING = """
        .type           _ZN2at6native12_GLOBAL__N_11kE,@function
        .size           _ZN2at6native12_GLOBAL__N_11kE,(.L_x_9 - _ZN2at6native12_GLOBAL__N_11kE)
_ZN2at6native12_GLOBAL__N_11kE:
        /*0000*/                   S2R R0, SR_TID.X ;
.L_x_0:
        /*0010*/                   IADD3 R1, R1, 0x1, RZ ;
.L_x_1:
        /*0020*/                   FFMA R8, R4, R5, R8 ;
        /*0030*/                   ISETP.NE.AND P1, PT, R0, 0x40, PT ;
        /*0040*/               @P1 BRA `(.L_x_1) ;
        /*0050*/                   ISETP.NE.AND P2, PT, R1, 0x7, PT ;
        /*0060*/               @P2 BRA `(.L_x_0) ;
        /*0070*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_u64) ;
        /*0080*/                   EXIT ;
        .weak           $__internal_0_$__cuda_sm20_div_u64
        .type           $__internal_0_$__cuda_sm20_div_u64,@function
$__internal_0_$__cuda_sm20_div_u64:
        /*0090*/                   IMAD R1, R1, R1, RZ ;
        /*00a0*/                   RET.REL.NODEC R20 `(_ZN2at6native12_GLOBAL__N_11kE) ;
.L_x_9:
"""


def test_internal_linkage_kernel_is_parsed_with_its_subroutine() -> None:
    funcs = sass.parse(LISTING)
    assert list(funcs) == ["_ZN2at6native12_GLOBAL__N_11kE"]  # the subroutine is no kernel
    f = funcs["_ZN2at6native12_GLOBAL__N_11kE"]
    assert len(f.instrs) == 11 and f.instrs[-1].base == "RET"
    assert any(b.calls for b in f.blocks)


def test_loop_depths() -> None:
    f = sass.parse(LISTING)["_ZN2at6native12_GLOBAL__N_11kE"]
    d = torch_native.depths(f)
    inner = next(b.index for b in f.blocks if b.instrs[0].base == "FFMA")
    outer = next(b.index for b in f.blocks if b.instrs[0].base == "IADD3")
    assert d == {outer: 1, inner: 2}


@pytest.mark.parametrize("length,kernel,stride,pad,dilation", [
    (56, 7, 1, 3, 1), (7, 7, 1, 3, 1), (13, 5, 2, 2, 1), (12, 3, 2, 1, 2), (9, 4, 3, 0, 1),
    (32, 31, 1, 15, 1)])
def test_in_bounds_counts(length: int, kernel: int, stride: int, pad: int,
                          dilation: int) -> None:
    """The taps each output (forward) and each input (input gradient) has inside, against
    a count written from the convolution's index arithmetic."""
    geo = make_geometry((length, length), (kernel, kernel), stride=stride, padding=pad,
                        dilation=dilation)
    out = geo.h.out_size
    fwd = [sum(0 <= o * stride - pad + k * dilation < length for k in range(kernel))
           for o in range(out)]
    bwd = [sum((i + pad - k * dilation) % stride == 0 and
               0 <= (i + pad - k * dilation) // stride < out for k in range(kernel))
           for i in range(length)]
    assert torch_native.in_bounds(geo.h) == (fwd, bwd)


def test_the_instance_pytorch_dispatches() -> None:
    f = torch_native.instance
    assert f("fwd", "float32", (7, 7), (1, 1)) == \
        "conv_depthwise2d_forward_kernel_generic<float, int>"
    assert f("fwd", "float16", (3, 3), (1, 1)) == "conv_depthwise2d_forward_kernel<3, c10::Half, int>"
    assert f("input-grad", "bfloat16", (7, 7), (2, 2)) == \
        "conv_depthwise2d_backward_kernel<0, 2, c10::BFloat16, int>"
    assert f("input-grad", "float32", (5, 5), (3, 3)) == \
        "conv_depthwise2d_backward_kernel<5, 0, float, int>"
    assert f("input-grad", "float32", (5, 3), (1, 1)) == \
        "conv_depthwise2d_backward_kernel<0, 1, float, int>"
    assert f("weight-grad", "float16", (31, 31), (1, 1)) == \
        "conv_depthwise2d_grad_weight_kernel<c10::Half, unsigned int>"


@pytest.mark.parametrize("case,dtype,layout,why", [
    (Case("paper", "dw", (2, 8, 9, 9), 7, padding=3), "float32", "channels_last", "cuDNN"),
    (Case("paper", "shared", (2, 8, 9, 9), 7, padding=3, groups=2), "float32", "nchw",
     "not a depth-wise"),
    (Case("paper", "dw", (2, 8, 9, 9), 3, padding=1), "float16", "nchw", "cuDNN"),
])
def test_rows_pytorch_does_not_run_natively_are_declined(case: Case, dtype: str, layout: str,
                                                         why: str) -> None:
    work = works(case, dtype, layout)[0]
    with pytest.raises(torch_native.Declined, match=why):
        torch_native.kernel_cost(work, 132)


def _rec(backend: str, low: float, high: float, direction: str = "fwd") -> dict:
    return {"case": "dw 64x96x56x56 k7", "dtype": "float32", "layout": "nchw",
            "direction": direction, "backend": backend, "h200": {"low_us": low, "high_us": high}}


def test_speed_up_table_divides_like_ends_by_the_best_of_ours() -> None:
    rows = [_rec("cuda", 20.0, 25.0), _rec("triton", 40.0, 50.0), _rec("torch", 400.0, 600.0),
            _rec("torch", 10.0, 12.0, "input-grad")]  # no localconn row: not in the table
    lines = report.peer_table(rows)
    body = [line for line in lines if line.startswith("| dw")]
    assert len(body) == 1
    assert "| cuda |" in body[0] and body[0].endswith("| 20.0–24.0× |")
    assert report.peer_table(rows[:2]) == []


@pytest.mark.skipif(torch_native.library() is None,
                    reason="needs libtorch_cuda.so (a CUDA PyTorch or LOCALCONN_TORCH_CUDA_LIB)")
@pytest.mark.parametrize("direction", ["fwd", "input-grad", "weight-grad"])
def test_pytorch_row_does_the_in_bounds_multiplies(direction: str) -> None:
    case = Case("paper", "dw", (2, 16, 14, 14), 7, padding=3)
    work = next(w for w in works(case, "float32", "nchw") if w.direction == direction)
    k = torch_native.kernel_cost(work, 132)
    assert not k.notes, k.notes  # every anchor met
    geo = make_geometry((14, 14), (7, 7), padding=3)
    taps = float((geo.h.input_index() >= 0).sum()) ** 2  # per channel and sample
    assert k.counts is not None
    issued = k.counts.mul_lanes * k.warps * 32 / (2 * 16)
    assert issued == pytest.approx(taps, rel=0.25) and issued >= taps * 0.999
    assert torch.tensor(k.counts.issued).item() > 0
