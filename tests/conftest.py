"""Session setup: Triton's kernels for the CPU interpreter on machines without CUDA.

Triton decides when a kernel is *defined* whether it runs compiled or in its
CPU interpreter (``TRITON_INTERPRET=1``). Without CUDA, this file defines
localconn's Triton kernels for the interpreter before any test module is
imported: it sets ``TRITON_INTERPRET=1`` only while it imports
``localconn.triton_kernels.launch``, then restores the variable. So the
rest of the suite runs with it unset (auto-dispatch on CPU still picks the
reference backend) and ``tests/test_triton.py`` sets it around its own tests
(the backend accepts CPU tensors only while it is set).

With CUDA nothing is done: the Triton tests run compiled on the GPU.
"""

from __future__ import annotations

import dataclasses
import os

import torch


def _define_interpreted_kernels() -> None:
    if torch.cuda.is_available():
        return
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import localconn.triton_kernels.launch  # noqa: F401  (defines the kernels)
    except Exception:  # no (working) Triton: test_triton.py skips
        return
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    # The interpreter checks every int32 add/sub/mul for overflow but only
    # reports under TRITON_DEBUG; skipping the check makes it ~3x faster.
    try:
        from triton.runtime import interpreter

        builder = interpreter.interpreter_builder
        if not builder.options.debug:
            builder.options = dataclasses.replace(builder.options, sanitize_overflow=False)
    except Exception:  # another Triton version: only slower
        pass


_define_interpreted_kernels()
