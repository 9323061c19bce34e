"""PyTorch's own depth-wise kernels, costed like ours: the peer row ``torch`` of the model.

``nn.Conv2d(C, C, k, groups=C)`` on a contiguous (NCHW) CUDA tensor runs PyTorch's
native kernels (``aten/src/ATen/native/cuda/DepthwiseConv2d.cu``) whenever cuDNN's
depth-wise heuristic declines, which it does for every kernel size but 1, 3 and 5
(and those only in float16). They are plain CUDA C++: one thread per output
(forward) or per input element (input gradient), 1024-thread blocks, the taps in
loops with bounds checks, and for the weight gradient one block per filter tap
``(c, i, j)`` whose warps sum ``grad_out * input`` over the batch and the positions
before a block reduction. Their sm_90 SASS is in ``libtorch_cuda.so`` of a CUDA
build of PyTorch; this module extracts the cubin that holds them (``cuobjdump``,
cached in ``build/perf-model/torch/``), picks the instance a call runs, and pins its
block counts (:mod:`perfmodel.flow`) with what the algorithm fixes per thread:

* the multiply-adds that act (the in-bounds taps, averaged over the threads), as
  an equation where each multiply is its own instruction and as a lower bound
  where it is predicated;
* the trips of the loops around the tap loop: the kernel rows (the forward visits
  only the rows in bounds, the input gradient all of them) and, in the weight
  gradient, the samples a warp walks.

Where the SASS still leaves a choice (an unrolled tap loop or its remainder; a
guarded tap skipped) the flow takes the cheapest path, so a PyTorch row is an
optimistic estimate and a speed-up over it a lower bound in that respect. Memory
accesses are taken as coalesced (neighbouring threads read neighbouring
positions; the weight is a broadcast).

Rows: static depth-wise (``dw``) and, as PyTorch users write per-sample filters,
dynamic depth-wise (``dyn-dw``) as the grouped convolution of ``(1, N*C, H, W)``
with ``(N*C, 1, K, K)`` filters; NCHW only (channels_last runs cuDNN, whose kernels
are not in the PyTorch wheel). Where no CUDA build of PyTorch is installed, point
``LOCALCONN_TORCH_CUDA_LIB`` at a ``libtorch_cuda.so`` (e.g. unpacked from the wheel:
``pip download torch --no-deps``, then ``unzip ... torch/lib/libtorch_cuda.so``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Optional

import torch

from localconn.geometry import Axis

from . import cubin as cubin_mod
from .counts import count
from .flow import Anchor, loops, solve
from .predict import KernelCost
from .tools import ROOT, nvidia_tool, write_atomic

ENV = "LOCALCONN_TORCH_CUDA_LIB"
#: at::cuda::detail::CUDA_NUM_THREADS: the forward's and the input gradient's block
THREADS = 1024
#: the weight gradient's block: a warp per sample, at most 256 threads
GRAD_WEIGHT_MAX_THREADS = 256
SCALAR = {"float32": "float", "float16": "c10::Half", "bfloat16": "c10::BFloat16"}
#: kernel sizes (square) with their own instances; others run the generic one
SPECIALISED = (1, 3, 5)


class Declined(Exception):
    """PyTorch has no native kernel for this row (the reason is the message)."""


def library() -> Optional[Path]:
    """``libtorch_cuda.so``: ``$LOCALCONN_TORCH_CUDA_LIB``, else the installed PyTorch's."""
    env = os.environ.get(ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cuda.so"
    return lib if lib.is_file() else None


def why_not() -> Optional[str]:
    """Why the ``torch`` rows cannot be made here, or None."""
    if library() is None:
        return (f"no libtorch_cuda.so (a CPU build of PyTorch is installed; set {ENV} to the "
                "library of a CUDA build)")
    return None


@cache
def depthwise_cubin() -> Path:
    """The sm_90 cubin of ``libtorch_cuda.so`` that holds the depth-wise kernels (cached)."""
    lib = library()
    if lib is None:
        raise Declined(why_not() or "no libtorch_cuda.so")
    st = lib.stat()
    key = hashlib.sha256(f"{lib.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    out = ROOT / "build" / "perf-model" / "torch" / key[:16] / "depthwise.sm_90.cubin"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([nvidia_tool("cuobjdump"), "-xelf", "sm_90.cubin", str(lib.resolve())],
                       cwd=tmp, check=True, capture_output=True)
        found = [p for p in sorted(Path(tmp).glob("*.cubin"))
                 if b"conv_depthwise2d_forward_kernel" in p.read_bytes()]
        if not found:
            raise Declined(f"{lib}: no sm_90 cubin with PyTorch's depth-wise kernels")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, found[0].read_bytes())
    return out


def instance(direction: str, dtype: str, kernel: tuple[int, int],
             stride: tuple[int, int]) -> str:
    """The demangled name's prefix of the kernel PyTorch launches (DepthwiseConv2d.cu's
    dispatch: instances for 1, 3 and 5 square kernels, strides 1 and 2 in the backward)."""
    t = SCALAR[dtype]
    ks = kernel[0] if kernel[0] == kernel[1] and kernel[0] in SPECIALISED else 0
    if direction == "fwd":
        if ks:
            return f"conv_depthwise2d_forward_kernel<{ks}, {t}, int>"
        return f"conv_depthwise2d_forward_kernel_generic<{t}, int>"
    if direction == "input-grad":
        s = stride[0] if stride[0] == stride[1] and stride[0] in (1, 2) else 0
        return f"conv_depthwise2d_backward_kernel<{ks}, {s}, {t}, int>"
    return f"conv_depthwise2d_grad_weight_kernel<{t}, unsigned int>"


def find(prefix: str) -> cubin_mod.Kernel:
    """The kernel of the depth-wise cubin whose demangled name contains ``prefix``."""
    for k in cubin_mod.kernels(depthwise_cubin()).values():
        if f"::{prefix}(" in k.demangled:
            return k
    raise Declined(f"no {prefix} in {depthwise_cubin()}")


def in_bounds(axis: Axis) -> tuple[list[int], list[int]]:
    """Per axis, from its window table (:meth:`localconn.geometry.Axis.input_index`): for
    each output, the taps inside the input (the forward's and the weight gradient's
    count); for each input, the taps that reach an output (the input gradient's)."""
    table = axis.input_index()  # (K, out): the input each tap reads, -1 outside
    inside = table[table >= 0]
    return (table >= 0).sum(0).tolist(), torch.bincount(inside, minlength=axis.in_size).tolist()


def depths(code) -> dict[int, int]:
    """Each loop's header block -> its nesting depth (1: outermost), from the back edges
    (a loop spans the blocks from its header to the source of its back edge)."""
    spans = loops(code)
    return {h: 1 + sum(h2 <= h and s <= s2 and (h2, s2) != (h, s) for s2, h2 in spans)
            for s, h in spans}


def _anchors(code, muls: float, trips: dict[int, float]) -> list[Anchor]:
    """Multiplies that act per thread (predicated ones bound it from above), and the
    header count of each loop at the given depths."""
    coeff = {b.index: float(sum(i.mul_lanes for i in b.instrs)) for b in code.blocks}
    sure = {b.index: float(sum(i.mul_lanes for i in b.instrs if not i.predicate))
            for b in code.blocks}
    coeff = {b: c for b, c in coeff.items() if c}
    out = [Anchor("multiplies per thread", coeff, muls, {b: sure[b] for b in coeff})]
    d = depths(code)
    for depth, value in trips.items():
        heads = {h: 1.0 for h, dh in d.items() if dh == depth}
        if heads:
            out.append(Anchor(f"trips of the depth-{depth} loops", heads, value))
    return out


def kernel_cost(work, sm_count: int) -> KernelCost:
    """PyTorch's native kernel for ``work`` (one direction of a ``dw``/``dyn-dw`` case)."""
    from .workload import elem, geometry, numel, operand_shape, result_role

    case = work.case
    if case.mode not in ("dw", "dyn-dw"):
        raise Declined(f"{case.mode}: not a depth-wise convolution")
    if case.window != "sliding":
        raise Declined(f"{case.window} windows: not a convolution")
    if work.layout != "nchw":
        raise Declined("channels_last: PyTorch runs cuDNN's kernels (not in its wheel)")
    k = (case.kernel, case.kernel)
    if work.dtype == "float16" and k[0] in SPECIALISED:
        raise Declined(f"float16 {k[0]}x{k[0]}: cuDNN's depth-wise kernels may run")
    geo = geometry(case)
    N, C, H, W = case.shape
    if case.mode == "dyn-dw":  # the grouped convolution of (1, N*C, H, W)
        N, C = 1, N * C
    (Ho, Wo), s = geo.out_size, geo.stride
    fh, bh = in_bounds(geo.h)
    fw, bw = in_bounds(geo.w)
    prim, a, b = case.primitives[work.direction]
    kern = find(instance(work.direction, work.dtype, k, (s[0], s[1])))
    if work.direction == "fwd":
        threads, blocks = THREADS, -(-(N * C * Ho * Wo) // THREADS)
        muls = sum(fh) * sum(fw) / (Ho * Wo)
        trips = {2: sum(fh) / Ho} if "_generic<" in kern.demangled else {}
    elif work.direction == "input-grad":
        threads, blocks = THREADS, -(-(N * C * H * W) // THREADS)
        muls = sum(bh) * sum(bw) / (H * W)
        trips = {2: 1.0, 3: float(k[0])} if "kernel<0," in kern.demangled else {}
    else:
        threads = min(N * 32, GRAD_WEIGHT_MAX_THREADS)
        warps = threads // 32
        blocks = C * k[0] * k[1]
        samples = N / warps  # a warp walks every warps-th sample
        muls = samples * sum(fh) * sum(fw) / (k[0] * k[1]) / 32
        trips = {1: samples}
    flow = solve(kern.code, _anchors(kern.code, muls, trips))
    notes = [f"{name} off by {r:+.0%}" for name, r in flow.residuals.items() if abs(r) > 0.05]
    e = elem(work.dtype)
    dram = e * sum(numel(operand_shape(case, r)) for r in (a, b, result_role(prim)))
    r = kern.resources
    smem = r.shared + (4 * (threads // 32) if work.direction == "weight-grad" else 0)
    short = re.search(r"conv_depthwise2d_\w+<[^>]*>", kern.demangled)
    short = short[0] if short else kern.name
    return KernelCost(name=f"torch {short}", blocks=blocks, threads=threads,
                      registers=r.registers, smem=smem, stack=r.stack,
                      counts=count(kern.code, flow.counts, {}), dram_bytes=dram, notes=notes)
