"""Backend registry and dispatch.

A backend is one registration of :class:`Backend`: three kernels (one per
primitive), an ``available()`` check (``None`` or the reason it cannot run
on this machine) and a ``supports(problem)`` check (``None`` or the reason it
declines that configuration). Dispatch picks, in order of preference:

1. the ``backend=`` argument of the op,
2. the innermost :func:`use_backend` context,
3. the ``LOCALCONN_BACKEND`` environment variable (read at call time),
4. ``"auto"``: among the available backends that support the problem, the
   fastest compiled one as measured once per problem signature when there
   are several (:mod:`localconn.autoselect`), else the highest-priority one.

A forced backend that is unavailable or declines raises
:class:`BackendUnavailableError` with its reason; ``auto`` moves on.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from .problem import Problem

ENV_VAR = "LOCALCONN_BACKEND"
AUTO = "auto"

#: Backends that localconn knows by name; the ones not registered in this
#: build report why.
KNOWN: dict[str, str] = {
    "cuda": "the CUDA extension localconn._C is not part of this build",
    "triton": "the Triton backend (localconn.triton_kernels) is not part of this build",
    "cpu": "the CPU extension localconn._cpu is not part of this build",
    "native": "",
    "reference": "",
}


class BackendUnavailableError(RuntimeError):
    """A forced backend cannot run on this machine or declines the problem."""


@dataclass
class Backend:
    """One implementation of the three primitives.

    ``conn2d(x, weight, bias, geometry)``, ``conn2d_transpose(g, weight,
    geometry)`` and ``corr2d(a, b, weight_shape, geometry)`` receive
    validated arguments. ``priority``: higher is preferred by ``auto``.
    """

    name: str
    conn2d: Callable
    conn2d_transpose: Callable
    corr2d: Callable
    priority: int = 0
    available: Callable[[], Optional[str]] = field(default=lambda: None)
    supports: Callable[[Problem], Optional[str]] = field(default=lambda problem: None)
    #: device types on which ``auto`` may choose this backend (None: any); a
    #: forced backend still runs elsewhere if ``supports`` allows it (e.g. the
    #: Triton interpreter on CPU tensors)
    auto_devices: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class BackendStatus:
    """What :func:`backends` reports for one backend."""

    name: str
    available: bool
    reason: Optional[str]

    def __str__(self) -> str:
        return f"{self.name}: " + (
            "available" if self.available else f"unavailable ({self.reason})"
        )


_REGISTRY: dict[str, Backend] = {}
_CONTEXT: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "localconn_backend", default=None
)


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend; its name must be one of :data:`KNOWN`."""
    if backend.name not in KNOWN:
        raise ValueError(f"backend name must be one of {sorted(KNOWN)}, got {backend.name!r}")
    _REGISTRY[backend.name] = backend


def _unavailable_reason(name: str) -> Optional[str]:
    backend = _REGISTRY.get(name)
    if backend is None:
        return KNOWN[name]
    return backend.available()


def backends() -> dict[str, BackendStatus]:
    """Each known backend's availability on this machine, and why not.

    Example::

        >>> localconn.backends()["reference"].available
        True
    """
    out = {}
    for name in KNOWN:
        reason = _unavailable_reason(name)
        out[name] = BackendStatus(name, reason is None, reason)
    return out


def check_backend_name(name: object, what: str = "backend") -> str:
    """``None``/``"auto"`` -> ``""``/``"auto"``; a known name passes; else ValueError
    (TypeError for what is not a str)."""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be None or a str ('auto' or one of {sorted(KNOWN)}), "
                        f"got {type(name).__name__} {name!r}")
    if name == AUTO or name in KNOWN:
        return name  # type: ignore[return-value]
    raise ValueError(f"{what} must be None, 'auto' or one of {sorted(KNOWN)}, got {name!r}")


@contextlib.contextmanager
def use_backend(name: Optional[str]) -> Iterator[None]:
    """Run the ops inside the ``with`` block on backend ``name`` (or ``"auto"``).

    An explicit ``backend=`` argument still wins.

    Example::

        >>> with localconn.use_backend("reference"):
        ...     y = localconn.local_conn2d(x, w)
    """
    token = _CONTEXT.set(check_backend_name(name) or AUTO)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def requested(explicit: str) -> str:
    """The backend asked for: explicit argument, then context, then environment."""
    if explicit:
        return explicit
    ctx = _CONTEXT.get()
    if ctx:
        return ctx
    env = os.environ.get(ENV_VAR, "")
    return check_backend_name(env, ENV_VAR) or AUTO if env else AUTO


def eligible(problem: Problem) -> list[Backend]:
    """The backends ``auto`` may run ``problem`` on, most preferred first.

    Raises :class:`BackendUnavailableError` listing every backend's reason
    when there is none.
    """
    declined, ranked = [], []
    for backend in sorted(_REGISTRY.values(), key=lambda b: -b.priority):
        reason = backend.available() or backend.supports(problem)
        devices = backend.auto_devices
        if reason is None and devices is not None and problem.device.type not in devices:
            reason = f"chosen automatically only for {', '.join(devices)} tensors"
        if reason is None:
            ranked.append(backend)
        else:
            declined.append(f"{backend.name}: {reason}")
    if not ranked:
        raise BackendUnavailableError(
            f"no backend can run {problem.primitive} ({problem.mode}, {problem.dtype}, "
            f"{problem.device.type}): " + "; ".join(declined)
        )
    return ranked


def forced(problem: Problem, name: str) -> Backend:
    """Backend ``name`` for ``problem``, or :class:`BackendUnavailableError` with its reason."""
    reason = _unavailable_reason(name)
    if reason is None:
        reason = _REGISTRY[name].supports(problem)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend={name!r} cannot run {problem.primitive} ({problem.mode}, "
            f"{problem.dtype}, {problem.device.type}): {reason}"
        )
    return _REGISTRY[name]


def select(problem: Problem, explicit: str = "") -> Backend:
    """The backend that runs ``problem`` by priority (see the module docstring).

    ``auto`` here is the static order; :func:`localconn.autoselect.choose`
    adds the measured choice between compiled backends that the ops use.
    """
    name = requested(explicit)
    return eligible(problem)[0] if name == AUTO else forced(problem, name)
