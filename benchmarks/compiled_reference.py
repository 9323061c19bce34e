"""``torch.compile`` of the reference: what a user gets by compiling the PyTorch spec.

The public ops are opaque custom ops to the compiler (it cannot fuse into
them), so this compiles the reference *functions* of
:mod:`localconn.reference` directly: an ``autograd.Function`` per primitive
whose forward and backward are the reference's ``conn2d`` /
``conn2d_transpose`` / ``corr2d`` with docs/design.md section 4's derivative
rules, traced and fused by Inductor. The reference loops over the taps in
Python, so the traced graph has ``K*K`` steps: large kernels are declined
(compilation would take minutes).
"""

from __future__ import annotations

from typing import Optional

import torch

from .cases import Case
from .workload import Fn, Setting, unfused_attention

#: largest K*K compiled (13x13 = 169 takes a minute or more; 31x31 would take many)
MAX_TAPS = 169
#: with --quick: 7x7 only, and NCHW only (compiling dominates a quick run)
MAX_TAPS_QUICK = 49

_configured = False


def configure_dynamo() -> None:
    """Settings for benchmarking compiled code.

    One compiled graph per case/dtype/layout/grad mode may exceed the default
    recompile limit, and hitting it must fail loudly rather than fall back to
    eager; and the ``bwd`` direction calls backward repeatedly on one graph
    (``retain_graph=True``), which donated buffers forbid.
    """
    global _configured
    if _configured:
        return
    import torch._dynamo.config as dynamo_cfg
    import torch._functorch.config as functorch_cfg

    for name, value in (
        ("cache_size_limit", 4096),
        ("recompile_limit", 4096),
        ("accumulated_cache_size_limit", 65536),
        ("accumulated_recompile_limit", 65536),
        ("fail_on_cache_limit_hit", True),
        ("fail_on_recompile_limit_hit", True),
    ):
        if hasattr(dynamo_cfg, name):
            setattr(dynamo_cfg, name, value)
    if hasattr(functorch_cfg, "donated_buffer"):
        functorch_cfg.donated_buffer = False
    _configured = True


def unsupported(case: Case, setting: Setting) -> Optional[str]:
    """Why the compiled reference does not run ``case`` here (None if it does)."""
    limit = MAX_TAPS_QUICK if setting.quick else MAX_TAPS
    if case.taps > limit:
        return (
            f"skipped: the reference unrolls {case.taps} taps; compiling more than {limit} "
            f"takes too long{' for --quick' if setting.quick else ''}"
        )
    if setting.quick and setting.layout != "nchw":
        return "skipped: --quick compiles the reference for NCHW only"
    if (
        setting.device.type == "cpu"
        and setting.layout == "channels_last"
        and case.window != "sliding"
        and case.op in ("corr", "attention", "conn")
    ):
        # torch.compile(lambda g, w: reference.conn2d_transpose(g, w, geo)) with a
        # channels_last g and a neighborhood geometry aborts the process (heap
        # corruption in Inductor's C++ code; seen with torch 2.13 CPU)
        return (
            "unsupported: Inductor's CPU code for the reference's neighborhood conn_T "
            "with channels_last inputs corrupts the heap (torch bug)"
        )
    try:
        from localconn import reference  # noqa: F401
        from localconn.geometry import make_geometry  # noqa: F401
    except Exception as e:
        return f"unavailable: localconn.reference / localconn.geometry not importable ({e})"
    return None


def compiled_reference_op(case: Case) -> Fn:
    """``torch.compile`` of the case's op built from the reference functions."""
    from localconn import reference as ref
    from localconn.geometry import make_geometry

    configure_dynamo()
    _, _, H, W = case.shape
    K = (case.kernel, case.kernel)
    if case.window == "sliding":
        geo = make_geometry((H, W), K, padding=case.padding)
    else:
        geo = make_geometry((H, W), K, window=case.window)
    shape = case.weight_shape

    class Conn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x, w)
            return ref.conn2d(x, w, None, geo)

        @staticmethod
        def backward(ctx, g: torch.Tensor):
            x, w = ctx.saved_tensors
            return ref.conn2d_transpose(g, w, geo), ref.corr2d(g, x, tuple(w.shape), geo)

    class Corr(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(a, b)
            return ref.corr2d(a, b, shape, geo)

        @staticmethod
        def backward(ctx, gw: torch.Tensor):
            a, b = ctx.saved_tensors
            return ref.conn2d(b, gw, None, geo), ref.conn2d_transpose(a, gw, geo)

    if case.op == "conn":
        fn: Fn = Conn.apply
    elif case.op == "corr":
        fn = Corr.apply
    else:
        fn = unfused_attention(case, Corr.apply, Conn.apply)
    return torch.compile(fn, dynamic=False)
