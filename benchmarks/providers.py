"""The provider registry: who can compute a case, and how.

A :class:`Provider` has a name, a kind, a ``supports(case, setting)`` that
returns ``None`` or the status of why it does not run there
(``"unavailable: ..."`` - not on this machine; ``"unsupported: ..."`` - not
this case; ``"skipped: ..."`` - left out of this run), and a
``build(case, setting)`` returning ``f(*inputs) -> output`` with autograd.

Kinds:

* ``localconn`` - one per backend in ``localconn.backends()``, through the
  public ops with ``backend=name``;
* ``torch`` - eager PyTorch formulations (:mod:`benchmarks.torch_baselines`);
* ``naive`` - the one-thread-per-output Triton kernel (:mod:`benchmarks.naive_triton`);
* ``compile`` - ``torch.compile`` of the reference (:mod:`benchmarks.compiled_reference`);
* ``flex`` - FlexAttention with the neighborhood block mask (:mod:`benchmarks.flex`).

The speed-up column compares against the best of the kinds in
:data:`TORCH_KINDS` (everything a PyTorch user has without localconn).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Callable, Optional

from . import compiled_reference, flex, torch_baselines
from .cases import Case
from .workload import Fn, Setting, fused_attention_op, localconn_op

Check = Callable[[Case, Setting], Optional[str]]
Build = Callable[[Case, Setting], Fn]

#: kinds whose best time is the "best PyTorch baseline" of a case
TORCH_KINDS = ("torch", "compile", "flex")


@dataclass(frozen=True)
class Provider:
    """One way to compute a case."""

    name: str
    kind: str
    description: str
    supports: Check
    build: Build


def _mode_in(*modes: str, why: str) -> Check:
    def check(case: Case, setting: Setting) -> Optional[str]:
        return None if case.mode in modes else f"unsupported: {why}"

    return check


def _no_compile_on_quick_cpu(setting: Setting) -> Optional[str]:
    if setting.device.type == "cpu" and setting.quick:
        return "skipped: torch.compile providers are left out on the CPU with --quick"
    return None


# ------------------------------------------------------------- localconn


def _auto_supports(case: Case, setting: Setting) -> Optional[str]:
    if setting.device.type != "cuda":
        import localconn

        cpu = localconn.backends()["cpu"].available
        return (f"skipped: off CUDA, auto runs the {'cpu' if cpu else 'reference'} backend "
                f"(see localconn-{'cpu' if cpu else 'reference'})")
    return None


def _fused_supports(case: Case, setting: Setting) -> Optional[str]:
    if case.mode != "attention":
        return "unsupported: the fused kernels run the whole attention (mode attention) only"
    if setting.device.type == "cpu":
        import localconn

        cpu = localconn.backends()["cpu"]
        return None if cpu.available else f"unavailable: {cpu.reason}"
    if setting.device.type != "cuda":
        return f"unsupported: the fused kernels run on CUDA and CPU, not {setting.device.type}"
    return None


def _native_supports(case: Case, setting: Setting) -> Optional[str]:
    if case.mode != "dw":
        return "unsupported: the native backend (PyTorch's conv2d) runs static depth-wise only"
    return ("skipped: the native backend runs PyTorch's conv2d kernels, timed by the "
            "torch-conv2d row; localconn-auto shows where auto runs them")


def _localconn_providers() -> list[Provider]:
    try:
        import localconn

        statuses = localconn.backends()
    except Exception as e:  # the package core is missing or broken
        reason = f"unavailable: import localconn failed ({type(e).__name__}: {e})"
        return [
            Provider(
                "localconn",
                "localconn",
                "localconn public ops",
                lambda case, setting: reason,
                lambda case, setting: None,  # type: ignore[return-value,arg-type]
            )
        ]
    out = []
    for name, status in statuses.items():
        reason = None if status.available else f"unavailable: {status.reason}"
        check = (lambda case, setting, r=reason: r) if name != "native" else _native_supports
        out.append(
            Provider(
                f"localconn-{name}",
                "localconn",
                f"localconn.local_conn2d/local_corr2d(backend={name!r})",
                check,
                lambda case, setting, n=name: localconn_op(case, n),
            )
        )
    out.append(
        Provider(
            "localconn-fused",
            "localconn",
            "localconn's fused attention kernels (Triton on CUDA, csrc/cpu on the CPU; "
            "window_attention(fused=True)): the whole attention without the map",
            _fused_supports,
            lambda case, setting: fused_attention_op(case),
        )
    )
    out.append(
        Provider(
            "localconn-auto",
            "localconn",
            "localconn's default: auto, the faster compiled backend as measured per case "
            "(localconn.autoselect), else the reference",
            _auto_supports,
            lambda case, setting: localconn_op(case, "auto"),
        )
    )
    return out


# ----------------------------------------------------------------- torch


def _unfold(case: Case, setting: Setting) -> Fn:
    if case.op == "conn":
        return torch_baselines.unfold_conn(case, setting.device)
    corr = torch_baselines.unfold_corr(case, setting.device)
    if case.op == "corr":
        return corr
    from .workload import unfused_attention

    return unfused_attention(case, corr, torch_baselines.unfold_conn(case, setting.device))


_TORCH = [
    Provider(
        "torch-conv2d",
        "torch",
        "F.conv2d(groups=C), in the case's layout (NCHW / channels_last code paths)",
        _mode_in("dw", why="F.conv2d(groups=C) is the baseline for static depth-wise (dw) only"),
        lambda case, setting: torch_baselines.conv2d_dw(case),
    ),
    Provider(
        "torch-batchfold",
        "torch",
        "dynamic DW conv as F.conv2d on (1, N*C, H, W) with groups=N*C",
        _mode_in("dyn-dw", why="the batch-folded grouped conv is the dynamic DW (dyn-dw) baseline"),
        lambda case, setting: torch_baselines.batchfold_dw(case),
    ),
    Provider(
        "torch-unfold",
        "torch",
        "F.unfold (im2col) times the broadcast weight, summed over taps",
        _mode_in(
            "shared",
            "attn-corr",
            "attn-conn",
            "attention",
            why="the F.unfold baseline covers channel-shared/position-specific weights and "
            "attention (depth-wise modes use conv2d)",
        ),
        _unfold,
    ),
]


# ----------------------------------------------------------------- naive


def _naive_check(case: Case, setting: Setting) -> Optional[str]:
    if case.window == "block":
        return "unsupported: the naive kernel has the sliding and neighborhood windows"
    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    if setting.device.type != "cuda" and not interpret:
        return "unavailable: the naive Triton kernel runs on CUDA only"
    try:
        from . import naive_triton  # noqa: F401
    except Exception as e:
        return f"unavailable: triton is not importable ({type(e).__name__}: {e})"
    return None


def _naive_build(case: Case, setting: Setting) -> Fn:
    from . import naive_triton as nt
    from .workload import unfused_attention

    if case.op == "conn":
        return nt.naive_conn(case)
    if case.op == "corr":
        return nt.naive_corr(case)
    return unfused_attention(case, nt.naive_corr(case), nt.naive_conn(case))


_NAIVE = Provider(
    "naive-triton",
    "naive",
    "plain Triton, one thread per output element (as the original DWNet/involution code)",
    _naive_check,
    _naive_build,
)


# ------------------------------------------------------- compile and flex


def _compile_check(case: Case, setting: Setting) -> Optional[str]:
    return _no_compile_on_quick_cpu(setting) or compiled_reference.unsupported(case, setting)


def _flex_check(case: Case, setting: Setting) -> Optional[str]:
    if case.mode != "attention":
        return "unsupported: FlexAttention runs the whole attention (mode attention) only"
    return flex.flex_unavailable() or _no_compile_on_quick_cpu(setting)


_COMPILED = [
    Provider(
        "compile-reference",
        "compile",
        "torch.compile of localconn.reference's functions (autograd by the DESIGN rules)",
        _compile_check,
        lambda case, setting: compiled_reference.compiled_reference_op(case),
    ),
    Provider(
        "flex-attention",
        "flex",
        "torch.compile(flex_attention) with the 2-D neighborhood block mask",
        _flex_check,
        lambda case, setting: flex.flex_attention_op(case, setting.device),
    ),
]


def all_providers() -> list[Provider]:
    """Every provider, localconn backends first."""
    return [*_localconn_providers(), *_TORCH, _NAIVE, *_COMPILED]


def select(patterns: list[str]) -> list[Provider]:
    """Providers whose name matches a glob in ``patterns`` or whose kind is in it (all if empty)."""
    providers = all_providers()
    if not patterns:
        return providers
    chosen = [
        p
        for p in providers
        if any(p.kind == pat or fnmatch.fnmatchcase(p.name, pat) for pat in patterns)
    ]
    if not chosen:
        names = ", ".join(p.name for p in providers)
        raise ValueError(f"no provider matches {patterns}; known: {names} (or a kind)")
    return chosen
