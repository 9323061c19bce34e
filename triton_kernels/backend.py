"""The Triton backend as localconn sees it: availability, support, entry points.

This module does not import Triton: :func:`available` tries it once (and
says why it failed), and the three entry points import :mod:`launch` (the
kernels) on first use. So ``import localconn`` stays fast and never fails
when Triton is missing.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, Optional

import torch

from localconn.geometry import Geometry
from localconn.problem import Problem

#: why CPU tensors are declined without the interpreter
NEEDS_CUDA = (
    "needs a CUDA tensor; set TRITON_INTERPRET=1 to run on CPU tensors through the Triton "
    "interpreter"
)

_import_error: list[Optional[str]] = []


def available() -> Optional[str]:
    """``None`` if Triton can run here (a CUDA device, or the interpreter) and imports."""
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        return f"no CUDA device: {NEEDS_CUDA}"
    if not torch.cuda.is_available() and _interpreted() is None and (
            why := _library_interpretable()):
        return why
    if not _import_error:
        try:
            importlib.import_module("triton")
            importlib.import_module("triton.language")
            _import_error.append(None)
        except Exception as e:  # ImportError, or a broken installation
            _import_error.append(
                f"triton is not importable ({type(e).__name__}: {e}); install it with "
                "`pip install triton`"
            )
    return _import_error[0]


_LOCK = threading.Lock()
_launch_module: list[Any] = []  # the imported launch module, once it is complete


def _interpreted() -> Optional[bool]:
    """Whether the kernels were defined for the interpreter; ``None`` if not defined yet.

    Reads the launch module only once its import has finished (another thread
    may be importing it: its partial module is in ``sys.modules`` already).
    """
    launch = _launch_module[0] if _launch_module else sys.modules.get(f"{__package__}.launch")
    flag = getattr(launch, "INTERPRETED", None)  # unset while another thread imports it
    return None if flag is None else bool(flag)


def _library_interpretable() -> Optional[str]:
    """``None`` if Triton's own ``tl`` functions can run in the interpreter, else why not.

    Triton decides when a function is *defined* whether it is interpreted:
    its standard library was defined by the time ``import localconn`` returns
    (``torch.utils.flop_counter``, which ``localconn.flops`` imports, imports
    Triton), so ``TRITON_INTERPRET=1`` set after that cannot take effect.
    """
    try:
        from triton.language import standard
        from triton.runtime.interpreter import InterpretedFunction
    except Exception:  # another Triton layout: let the interpreter try
        return None
    if isinstance(getattr(standard, "cdiv", None), InterpretedFunction):
        return None
    return (
        "TRITON_INTERPRET=1 was set after Triton was imported (import localconn imports it, "
        "through torch.utils.flop_counter): set it before the first import of localconn or "
        "torch.utils.flop_counter, e.g. `TRITON_INTERPRET=1 python ...`"
    )


def supports(problem: Problem) -> Optional[str]:
    """``None`` if the kernels can run ``problem``, else why not.

    CUDA tensors run compiled kernels (compute capability 7.0 or newer;
    bfloat16 from 8.0). CPU tensors run only through the Triton interpreter
    (``TRITON_INTERPRET=1``, set before the kernels are first used). Every
    window, weight sharing, stride and float dtype is supported.
    """
    device = problem.device
    if device.type == "cuda":
        if torch.version.hip is None:
            major, minor = torch.cuda.get_device_capability(device)
            if (major, minor) < (7, 0):
                return f"needs a GPU of compute capability >= 7.0, got {major}.{minor}"
            if problem.dtype == torch.bfloat16 and major < 8:
                return f"bfloat16 needs compute capability >= 8.0, got {major}.{minor}"
        return None
    if device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET") != "1":
            return NEEDS_CUDA
        if _interpreted() is None and (why := _library_interpretable()):
            return why
        if _interpreted() is False:
            return (
                "the Triton kernels were already defined for the GPU in this process (imported "
                "without TRITON_INTERPRET=1); set TRITON_INTERPRET=1 before their first use to "
                "run them on CPU tensors"
            )
        return None
    return f"needs a CUDA tensor, got a {device.type} tensor"


def _launch() -> Any:
    """The kernels' launch module, imported once (thread-safe: the first calls from two
    threads wait for one complete import)."""
    if not _launch_module:
        with _LOCK:
            if not _launch_module:
                _launch_module.append(importlib.import_module(f"{__package__}.launch"))
    return _launch_module[0]


def conn2d(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], geo: Geometry
) -> torch.Tensor:
    """See :func:`launch.conn2d`."""
    return _launch().conn2d(x, weight, bias, geo)


def conn2d_transpose(g: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """See :func:`launch.conn2d_transpose`."""
    return _launch().conn2d_transpose(g, weight, geo)


def corr2d(
    a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int], geo: Geometry
) -> torch.Tensor:
    """See :func:`launch.corr2d`."""
    return _launch().corr2d(a, b, weight_shape, geo)


def neighborhood_attention(*args: Any) -> tuple[Any, ...]:
    """See :func:`launch.neighborhood_attention`."""
    return _launch().neighborhood_attention(*args)


def neighborhood_attention_backward(*args: Any) -> tuple[Any, ...]:
    """See :func:`launch.neighborhood_attention_backward`."""
    return _launch().neighborhood_attention_backward(*args)
