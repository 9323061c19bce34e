"""The CPU backend: the three primitives in vectorised C++ (``csrc/cpu/``).

The kernels are compiled into the extension ``localconn._cpu`` by ``setup.py`` on
any machine with a C++ compiler (PyTorch with or without CUDA;
``LOCALCONN_BUILD_CPU=0`` skips it). They register the ops
``localconn_cpu::conn2d``, ``::conn2d_transpose`` and ``::corr2d`` (``TORCH_LIBRARY``,
CPU dispatch key), which take the argument lists of :mod:`localconn.cuda_args` (the
CUDA ops' own) and write into outputs allocated here. ``auto`` picks this backend
for CPU tensors when it is built; the reference backend is the fallback.

How they work (docs/kernels.md, "CPU"): one ``(n, c)`` plane per task
(``at::parallel_for``), vectorised along the output row with ATen's
``Vectorized`` for the instruction set ATen itself runs (AVX-512, AVX2 or the
baseline, compiled once each, chosen at load; ``ATEN_CPU_CAPABILITY`` lowers it);
16-bit inputs converted to float32 once (channels_last bfloat16 depth-wise: in
registers), float32 accumulation (float64 for float64); every sum in a fixed order
(deterministic; no atomics); ``at::parallel_for`` on PyTorch's threads.

Example::

    >>> y = localconn.local_conn2d(x, w, padding=3, backend="cpu")
    >>> localconn.cpu_backend.capability()
    'isa=avx512 vector_bytes=64'
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Optional

import torch

from .cuda_args import DTYPE_CODES, conn_meta, corr_meta
from .geometry import Geometry
from .problem import Problem
from .reference import memory_format_of

_extension: list[Any] = []


def empty(*size: Any, **kwargs: Any) -> torch.Tensor:
    """``torch.empty``: every output comes from here (tests fill it with NaN)."""
    return torch.empty(*size, **kwargs)


def extension() -> Optional[Any]:
    """The loaded ``localconn._cpu`` (registers the ops), or ``None`` if it is not built."""
    if not _extension:
        try:
            _extension.append(importlib.import_module("localconn._cpu"))
        except Exception as e:  # not built, or built for another PyTorch
            _extension.append(e)
    ext = _extension[0]
    return None if isinstance(ext, Exception) else ext


def available() -> Optional[str]:
    """``None`` if the extension is built and loads, else why not."""
    if extension() is None:
        return (f"the CPU extension localconn._cpu is not importable ({_extension[0]}); build "
                "it with `pip install --no-build-isolation -e .` (needs a C++ compiler)")
    return None


def capability() -> str:
    """The instruction set the kernels run, e.g. ``'isa=avx512 vector_bytes=64'``."""
    extension()
    return torch.ops.localconn_cpu.capability()


def supports(problem: Problem) -> Optional[str]:
    """``None`` for a CPU tensor of a float dtype (every window, sharing mode and size)."""
    if problem.device.type != "cpu":
        return f"needs a CPU tensor, got a {problem.device.type} tensor"
    if problem.dtype not in DTYPE_CODES:
        return f"needs float32, float16, bfloat16 or float64, got {problem.dtype}"
    return None


def conn2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
           geo: Geometry) -> torch.Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]`` into a new ``y``."""
    N, C = x.shape[:2]
    y = empty((N, C, *geo.out_size), dtype=x.dtype, device=x.device,
              memory_format=memory_format_of(x))
    meta = conn_meta(x, weight, 0 if bias is None else bias.stride(0), y, geo)
    extension()
    torch.ops.localconn_cpu.conn2d(x, weight, bias, y, meta)
    return y


def conn2d_transpose(g: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] g[n, c, o]``."""
    N, C = g.shape[:2]
    out = empty((N, C, *geo.in_size), dtype=g.dtype, device=g.device,
                memory_format=memory_format_of(g))
    meta = conn_meta(g, weight, 0, out, geo)
    extension()
    torch.ops.localconn_cpu.conn2d_transpose(g, weight, out, meta)
    return out


def corr2d(a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int],
           geo: Geometry) -> torch.Tensor:
    """``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]`` over the broadcast dims."""
    out = empty(tuple(int(s) for s in weight_shape), dtype=a.dtype, device=a.device)
    meta = corr_meta(a, b, weight_shape, geo)
    extension()
    torch.ops.localconn_cpu.corr2d(a, b, out, meta)
    return out
