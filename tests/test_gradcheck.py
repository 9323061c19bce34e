"""Autograd of the three public ops: gradcheck, gradgradcheck, and DESIGN section 4.

gradcheck/gradgradcheck run in float64 on tiny shapes for every window and a
set of sharing modes that covers every state of every weight dim. The
section-4 tests compare autograd's gradients with the oracle's
autograd-free formulas:

* conn(x, W):   dx = conn_T(g, W),  dW = corr(g, x),  dbias = sum g
* conn_T(g, W): dg = conn(dxbar, W), dW = corr(g, dxbar)
* corr(a, b):   da = conn(b, dWhat), db = conn_T(a, dWhat)
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import torch
from oracle import (
    SHARING_MODES,
    Sharing,
    oracle_args,
    oracle_conn,
    oracle_conn_transpose,
    oracle_corr,
    out_hw,
    sharing_id,
    weight_shape,
)
from tolerances import assert_close

import localconn

N, C, G = 2, 4, 2

# (window, kernel, in_size, public kwargs) - tiny, with a non-trivial window each.
GEOMS: list[tuple[str, tuple[int, int], tuple[int, int], dict[str, Any]]] = [
    ("sliding", (2, 3), (4, 5), {"stride": (1, 2), "padding": 1, "dilation": 1}),
    ("sliding", (3, 2), (4, 4), {"stride": 1, "padding": "same", "dilation": (1, 2)}),
    ("neighborhood", (2, 2), (3, 4), {"dilation": (1, 2)}),
    ("neighborhood", (3, 2), (4, 3), {}),
    ("block", (2, 3), (4, 3), {}),
]
GEOM_IDS = [f"{w}-k{k[0]}x{k[1]}-in{s[0]}x{s[1]}-{i}" for i, (w, k, s, _) in enumerate(GEOMS)]

# Every state of every dim appears at least once (and each table row of DESIGN s.1).
GC_MODES: list[Sharing] = [
    (False, "C", False, False),  # depth-wise conv
    (True, "C", False, False),  # dynamic depth-wise conv
    (True, "G", True, True),  # involution / attention
    (False, "G", True, True),  # static channel-shared LC
    (False, "C", True, True),  # unshared LC
    (False, "1", True, False),
    (True, "1", False, True),
]
GC_IDS = [sharing_id(m) for m in GC_MODES]
FULL_MODE: Sharing = (True, "G", True, True)
FULL_GEOMS = [GEOMS[0], GEOMS[2], GEOMS[4]]


def _oracle_kwargs(window: str, kernel: tuple[int, int], kw: dict[str, Any]) -> dict[str, Any]:
    return oracle_args(kernel, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1),
                       window)


def _setup(geom: Any, mode: Sharing, key: Any) -> tuple[Any, ...]:
    """x, w, g (output-shaped), bias, public kwargs, oracle kwargs, generator."""
    window, kernel, in_size, kw = geom
    kwargs = dict(kw, window=window)
    okw = _oracle_kwargs(window, kernel, kw)
    out = out_hw(in_size, kernel, okw["stride"], okw["pad"], okw["dilation"], window)
    gen = torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    x = rnd(N, C, *in_size)
    w = rnd(*weight_shape(mode, N, C, G, kernel, out))
    g = rnd(N, C, *out)
    b = rnd(C)
    return x, w, g, b, kwargs, okw, gen


@pytest.mark.parametrize("mode", GC_MODES, ids=GC_IDS)
@pytest.mark.parametrize("geom", GEOMS, ids=GEOM_IDS)
def test_gradcheck(geom: Any, mode: Sharing) -> None:
    """gradcheck of conn (with bias), conn_transpose and corr.

    The full Jacobian is compared for the most general mode (FULL_MODE) on one
    geometry per window; the rest use fast mode (random projections v^T J u),
    which keeps the suite fast.
    """
    x, w, g, b, kw, _, _ = _setup(geom, mode, ("gc", geom, mode))
    in_size = tuple(x.shape[2:])
    shape = tuple(w.shape)
    fast = not (mode == FULL_MODE and geom in FULL_GEOMS)
    assert torch.autograd.gradcheck(
        lambda x, w, b: localconn.local_conn2d(x, w, b, **kw), (x, w, b), fast_mode=fast)
    assert torch.autograd.gradcheck(
        lambda g, w: localconn.local_conn2d_transpose(g, w, in_size, **kw), (g, w),
        fast_mode=fast)
    assert torch.autograd.gradcheck(
        lambda a, b: localconn.local_corr2d(a, b, shape, **kw), (g, x), fast_mode=fast)


@pytest.mark.parametrize("mode", GC_MODES, ids=GC_IDS)
@pytest.mark.parametrize("geom", GEOMS, ids=GEOM_IDS)
def test_gradgradcheck(geom: Any, mode: Sharing) -> None:
    """gradgradcheck (double backward) of conn (with bias), conn_transpose and corr."""
    x, w, g, b, kw, _, _ = _setup(geom, mode, ("ggc", geom, mode))
    in_size = tuple(x.shape[2:])
    shape = tuple(w.shape)
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: localconn.local_conn2d(x, w, b, **kw), (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(
        lambda g, w: localconn.local_conn2d_transpose(g, w, in_size, **kw), (g, w),
        fast_mode=True)
    assert torch.autograd.gradgradcheck(
        lambda a, b: localconn.local_corr2d(a, b, shape, **kw), (g, x), fast_mode=True)


@pytest.mark.parametrize("mode", SHARING_MODES, ids=[sharing_id(m) for m in SHARING_MODES])
@pytest.mark.parametrize("geom", GEOMS, ids=GEOM_IDS)
def test_conn_grad_formula(geom: Any, mode: Sharing) -> None:
    """conn: dx = conn_T(g, W), dW = corr(g, x), dbias = sum of g (oracle, no autograd)."""
    x, w, g, b, kw, okw, _ = _setup(geom, mode, ("conn-grad", geom, mode))
    y = localconn.local_conn2d(x, w, b, **kw)
    dx, dw, db = torch.autograd.grad(y, (x, w, b), g)
    assert_close(dx, oracle_conn_transpose(g, w, x.shape[2:], **okw), what="d conn / dx")
    assert_close(dw, oracle_corr(g, x, w.shape, **okw), what="d conn / dW")
    assert_close(db, g.detach().sum((0, 2, 3)), what="d conn / dbias")


@pytest.mark.parametrize("mode", SHARING_MODES, ids=[sharing_id(m) for m in SHARING_MODES])
@pytest.mark.parametrize("geom", GEOMS, ids=GEOM_IDS)
def test_transpose_and_corr_grad_formulas(geom: Any, mode: Sharing) -> None:
    """conn_T: dg = conn(dxbar, W), dW = corr(g, dxbar).

    corr: da = conn(b, dWhat), db = conn_T(a, dWhat).
    """
    x, w, g, _, kw, okw, gen = _setup(geom, mode, ("T-corr-grad", geom, mode))
    in_size = tuple(x.shape[2:])
    dxbar = torch.randn(x.shape, generator=gen, dtype=x.dtype)  # upstream grad of conn_T
    xt = localconn.local_conn2d_transpose(g, w, in_size, **kw)
    dg, dw = torch.autograd.grad(xt, (g, w), dxbar)
    assert_close(dg, oracle_conn(dxbar, w, None, **okw), what="d conn_T / dg")
    assert_close(dw, oracle_corr(g, dxbar, w.shape, **okw), what="d conn_T / dW")

    dwhat = torch.randn(w.shape, generator=gen, dtype=w.dtype)  # upstream grad of corr
    wc = localconn.local_corr2d(g, x, tuple(w.shape), **kw)
    da, db = torch.autograd.grad(wc, (g, x), dwhat)
    assert_close(da, oracle_conn(x, dwhat, None, **okw), what="d corr / da")
    assert_close(db, oracle_conn_transpose(g, dwhat, in_size, **okw), what="d corr / db")
