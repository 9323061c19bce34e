"""Helpers shared by the compiled-backend tests (Triton, CUDA): seeded data,
window arguments and one check of all three primitives against the reference.

Tensors are made on :data:`DEVICE` (CUDA when present, else CPU).
"""

from __future__ import annotations

import zlib
from typing import Any, Optional

import torch
from tolerances import assert_close

import localconn
from localconn.geometry import make_geometry
from localconn.reference import memory_format_of

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
#: the backend ``auto`` runs CPU tensors on: the compiled cpu backend where it is built
CPU_AUTO = "cpu" if localconn.backends()["cpu"].available else "reference"
#: backends that run static depth-wise problems only (no attention: tests/test_native.py)
DEPTHWISE_ONLY = ("native",)


def gen(*key: Any) -> torch.Generator:
    """A CPU generator seeded from ``key``."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def rand(shape: tuple[int, ...], g: torch.Generator, dtype: torch.dtype = torch.float32,
         cl: bool = False) -> torch.Tensor:
    """Standard normal data on the test device (channels_last if ``cl``)."""
    t = torch.randn(shape, generator=g, dtype=torch.float64).to(device=DEVICE, dtype=dtype)
    return t.contiguous(memory_format=torch.channels_last) if cl else t


def window_kwargs(window: str, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> dict:
    kw: dict[str, Any] = {"window": window}
    if window == "sliding":
        kw.update(stride=stride, padding=padding, dilation=dilation)
    elif window == "neighborhood":
        kw.update(dilation=dilation)
    return kw


def out_size(in_size: tuple[int, int], kernel: tuple[int, int], kw: dict) -> tuple[int, int]:
    geo = make_geometry(in_size, kernel, kw.get("stride", 1), kw.get("padding", 0),
                        kw.get("dilation", 1), kw["window"])
    return geo.out_size


def corr_terms(wshape: tuple[int, ...], N: int, C: int, out: tuple[int, int]) -> int:
    """How many products each element of ``corr2d``'s result sums."""
    Nw, Cw, _, _, Hw, Ww = wshape
    return (N // Nw) * (C // Cw) * (out[0] // Hw) * (out[1] // Ww)


def corr_scale(terms: int) -> float:
    """Tolerance widening for a sum of ``terms`` products (orders differ)."""
    return max(1.0, terms / 64) ** 0.5


def check_primitives(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor], kw: dict,
                     what: str, g: Optional[torch.Tensor] = None,
                     backend: str = "triton", scale: float = 1.0) -> None:
    """conn2d (with ``bias``), conn2d_transpose and corr2d: ``backend`` == reference.

    ``scale`` widens the tolerance of all three for sums of many taps.
    """
    N, C, H, W = x.shape
    y = localconn.local_conn2d(x, w, bias, backend=backend, **kw)
    ref = localconn.local_conn2d(x, w, bias, backend="reference", **kw)
    assert y.dtype == x.dtype and y.device == x.device
    assert memory_format_of(y) == memory_format_of(x), f"{what}: conn2d lost the memory format"
    assert_close(y, ref, what=f"{what}: conn2d", scale=scale)

    if g is None:
        g = rand(tuple(ref.shape), gen("g", what), x.dtype,
                 cl=memory_format_of(x) == torch.channels_last)
    xt = localconn.local_conn2d_transpose(g, w, (H, W), backend=backend, **kw)
    ref = localconn.local_conn2d_transpose(g, w, (H, W), backend="reference", **kw)
    assert memory_format_of(xt) == memory_format_of(g), f"{what}: transpose lost the format"
    assert_close(xt, ref, what=f"{what}: conn2d_transpose", scale=scale)

    shape = tuple(w.shape)
    wc = localconn.local_corr2d(g, x, shape, backend=backend, **kw)
    ref = localconn.local_corr2d(g, x, shape, backend="reference", **kw)
    assert wc.shape == shape and wc.dtype == x.dtype
    corr = corr_scale(corr_terms(shape, N, C, tuple(g.shape[2:])))
    assert_close(wc, ref, what=f"{what}: corr2d", scale=max(scale, corr))
