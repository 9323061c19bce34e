"""The CUDA backend as localconn sees it: availability, support, entry points.

The kernels live in ``csrc/`` and are compiled into the extension
``localconn._C`` by ``setup.py`` when PyTorch has CUDA and a CUDA toolkit is
found (``LOCALCONN_BUILD_CUDA=0`` skips it, ``=1`` forces it). The extension
registers the ops ``localconn_cuda::conn2d``, ``::conn2d_transpose`` and
``::corr2d`` (``TORCH_LIBRARY``, CUDA dispatch key); they write into outputs
allocated here, from the flat argument lists of :mod:`localconn.cuda_args`.
Without the extension :func:`available` says why, and ``import localconn``
never fails.

Which kernel runs (csrc/plan.h): NCHW-like results run on shared-memory tiles
(a register fast path for 3/5/7/13/31-square sliding windows with stride 1
and dilation 1 and a weight shared across positions); channels_last results
run one thread per element in memory order (coalesced along channels);
``conn2d_transpose`` with a sliding window, stride 1 and a shared weight is
the forward tile kernel with the filter flipped, else a gather per element;
``corr2d`` is a block per result filter with a split reduction when the
weight is shared across positions, else ``L`` lanes per result element.
Every kernel is deterministic (fixed-order sums, no atomics).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .cuda_args import DTYPE_CODES, conn_meta, corr_meta
from .geometry import Geometry
from .problem import Problem
from .reference import memory_format_of
from .toolkit import arch_codes, set_cuda_home_from_nvcc

#: tests set this to force a number of ``corr2d`` reduction splits (0: planned)
FORCE_SPLITS = 0

_extension: list[Any] = []


def empty(*size: Any, **kwargs: Any) -> torch.Tensor:
    """``torch.empty``: every output comes from here (tests fill it with NaN)."""
    return torch.empty(*size, **kwargs)


def _why_not_built(error: Exception) -> str:
    if torch.version.cuda is None:
        return (
            "the CUDA extension localconn._C is not built: this PyTorch has no CUDA "
            "(torch.version.cuda is None), so setup.py skipped it"
        )
    if os.environ.get("LOCALCONN_BUILD_CUDA") == "0":
        return "the CUDA extension localconn._C is not built: LOCALCONN_BUILD_CUDA=0"
    return (
        f"the CUDA extension localconn._C is not importable ({type(error).__name__}: {error}); "
        "build it with `LOCALCONN_BUILD_CUDA=1 pip install --no-build-isolation -e .` "
        "(needs a CUDA toolkit: nvcc on the PATH or CUDA_HOME)"
    )


def _load(path: str) -> Any:
    """Load a ``_C`` library built elsewhere (``make gpu-prebuild``) as ``localconn._C``."""
    spec = importlib.util.spec_from_file_location("localconn._C", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"LOCALCONN_EXTENSION={path!r} is not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["localconn._C"] = module
    return module


def jit_sources() -> Optional[Path]:
    """The ``csrc/`` folder beside the package (an editable install or a source tree), or
    ``None`` (a wheel ships the built library, not the sources)."""
    csrc = Path(__file__).resolve().parent.parent / "csrc"
    return csrc if (csrc / "binding.cpp").exists() else None


def jit_build() -> Any:
    """``LOCALCONN_JIT=1``: compile ``csrc/`` on first use with
    ``torch.utils.cpp_extension.load`` (cached by PyTorch under ``TORCH_EXTENSIONS_DIR``,
    rebuilt when a source changes) for the architectures of ``TORCH_CUDA_ARCH_LIST`` or of
    the devices present: the extension without ``pip install --no-build-isolation``.
    Raises ``ImportError`` saying why it cannot (no CUDA PyTorch, no toolkit, no sources)."""
    if torch.version.cuda is None:
        raise ImportError("LOCALCONN_JIT=1 needs a PyTorch built with CUDA "
                          "(torch.version.cuda is None)")
    set_cuda_home_from_nvcc()
    from torch.utils import cpp_extension

    if os.environ.get("CUDA_HOME") and cpp_extension.CUDA_HOME != os.environ["CUDA_HOME"]:
        cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]  # (imported before it was set)
    if cpp_extension.CUDA_HOME is None:
        raise ImportError("LOCALCONN_JIT=1 needs a CUDA toolkit (nvcc on the PATH or CUDA_HOME)")
    csrc = jit_sources()
    if csrc is None:
        raise ImportError("LOCALCONN_JIT=1 needs the csrc/ sources beside the package (an "
                          "editable install or a source tree; a wheel has none)")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or ";".join(
        f"{a}.{b}" for a, b in sorted({torch.cuda.get_device_capability(i)
                                        for i in range(torch.cuda.device_count())}))
    codes = arch_codes(archs) or "0"
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", archs)
    sources = [str(csrc / f) for f in ("binding.cpp", "conn.cu", "conn_transpose.cu", "corr.cu")]
    cpp_extension.load(name="localconn_jit", sources=sources, extra_include_paths=[str(csrc)],
                       extra_cflags=["-O3", f"-DLOCALCONN_ARCHS={codes}"],
                       extra_cuda_cflags=["-O3", "-std=c++17", "-lineinfo"],
                       is_python_module=False, verbose=False)
    return torch.ops.localconn_cuda


def extension() -> Optional[Any]:
    """The loaded ``localconn._C`` (registers the ops), or ``None`` if it is not built.

    ``LOCALCONN_EXTENSION=/path/to/_C.cpython-312-x86_64-linux-gnu.so`` loads a
    library built by ``make gpu-prebuild`` instead of the installed one.
    ``LOCALCONN_JIT=1`` compiles ``csrc/`` on first use where no built library loads
    (:func:`jit_build`).
    """
    if not _extension:
        try:
            path = os.environ.get("LOCALCONN_EXTENSION")
            _extension.append(_load(path) if path else importlib.import_module("localconn._C"))
        except Exception as e:  # ImportError, or a build for another PyTorch / CUDA
            if os.environ.get("LOCALCONN_JIT") == "1" and not os.environ.get("LOCALCONN_EXTENSION"):
                try:
                    _extension.append(jit_build())
                except Exception as jit_error:
                    _extension.append(ImportError(f"{e}; and the JIT build failed: {jit_error}"))
            else:
                _extension.append(e)
    ext = _extension[0]
    return None if isinstance(ext, Exception) else ext


_warned_unbuilt: list[bool] = []


def _warn_unbuilt(why: str) -> None:
    """Once per process, on a machine with a CUDA device: the extension is missing, which
    ``pip install .`` (build isolation: a second PyTorch, often without CUDA) does silently
    unless ``-v`` shows the build's output."""
    if _warned_unbuilt or os.environ.get("LOCALCONN_BUILD_CUDA") == "0":
        return
    _warned_unbuilt.append(True)
    warnings.warn(
        f"localconn: a CUDA device is present but {why}. The Triton and reference backends "
        "run instead. Build the CUDA kernels with `pip install --no-build-isolation .` (or "
        "`-e .`) in an environment whose PyTorch has CUDA and whose PATH has nvcc.",
        RuntimeWarning, stacklevel=3)


def available() -> Optional[str]:
    """``None`` if the extension is built and a CUDA device is present, else why not
    (a CUDA device without the extension also warns, once)."""
    if extension() is None:
        why = _why_not_built(_extension[0])
        if torch.cuda.is_available():
            _warn_unbuilt(why)
        return why
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


@functools.cache
def built_archs() -> tuple[int, ...]:
    """Compute capabilities the extension was compiled for, e.g. ``(80, 90)`` (read once)."""
    info = torch.ops.localconn_cuda.build_info()  # "archs=80_90"
    return tuple(int(a) for a in info.split("archs=")[1].split("_") if a.isdigit())


def supports(problem: Problem) -> Optional[str]:
    """``None`` if the kernels can run ``problem``, else why not.

    Needs a CUDA tensor of a float dtype on a device whose compute capability
    is at least the lowest one the extension was built for (the build embeds
    PTX for the highest, so newer devices run it). Every window, weight
    sharing, stride, dilation and kernel size is supported.
    """
    if problem.device.type != "cuda":
        return f"needs a CUDA tensor, got a {problem.device.type} tensor"
    if problem.dtype not in DTYPE_CODES:
        return f"needs float32, float16, bfloat16 or float64, got {problem.dtype}"
    major, minor = torch.cuda.get_device_capability(problem.device)
    archs = built_archs()
    if archs and major * 10 + minor < min(archs):
        return (
            f"built for compute capability {min(archs) / 10:.1f} and newer "
            f"(TORCH_CUDA_ARCH_LIST at build time), the device is {major}.{minor}"
        )
    return None


# ------------------------------------------------------------------ entry points
# ``run`` executes one primitive from its argument list; the default is the
# extension's op, the CPU emulator (tests/cuda_emulator.py) passes its own.
# Empty inputs never get here: localconn.ops answers them before dispatch.
Run = Callable[..., int]


def _ops() -> Any:
    extension()
    return torch.ops.localconn_cuda


def _device(t: torch.Tensor) -> Any:
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def conn2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    geo: Geometry,
    run: Optional[Run] = None,
) -> torch.Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]`` into a new ``y``."""
    N, C = x.shape[:2]
    y = empty((N, C, *geo.out_size), dtype=x.dtype, device=x.device,
              memory_format=memory_format_of(x))
    meta = conn_meta(x, weight, 0 if bias is None else bias.stride(0), y, geo)
    with _device(x):
        (run or _ops().conn2d)(x, weight, bias, y, meta)
    return y


def conn2d_transpose(
    g: torch.Tensor, weight: torch.Tensor, geo: Geometry, run: Optional[Run] = None
) -> torch.Tensor:
    """``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] g[n, c, o]``."""
    N, C = g.shape[:2]
    out = empty((N, C, *geo.in_size), dtype=g.dtype, device=g.device,
                memory_format=memory_format_of(g))
    meta = conn_meta(g, weight, 0, out, geo)
    with _device(g):
        (run or _ops().conn2d_transpose)(g, weight, out, meta)
    return out


def corr2d(
    a: torch.Tensor,
    b: torch.Tensor,
    weight_shape: Sequence[int],
    geo: Geometry,
    run: Optional[Run] = None,
) -> torch.Tensor:
    """``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]`` over the broadcast dims."""
    out = empty(tuple(int(s) for s in weight_shape), dtype=a.dtype, device=a.device)
    meta = corr_meta(a, b, weight_shape, geo)
    with _device(a):
        (run or _ops().corr2d)(a, b, out, meta, FORCE_SPLITS)
    return out
