"""A naive Triton baseline: one thread per output element, as in the original code.

This is the kind of kernel the original DWNet / involution code shipped
(CUDA, one thread per output element, no tiling, no shared memory): a
lane computes one element of its result by looping over the taps (or the
channels of a group), reading everything from global memory.

* ``conn``: one lane per ``y[n, c, ho, wo]``, loop over the ``K*K`` taps.
* ``conn_T``: one lane per ``dx[n, c, h, w]``, loop over the taps whose
  window reads ``(h, w)`` (sliding: ``K*K``; neighborhood: ``(2K-1)^2``
  candidates).
* ``corr``: one lane per element of the full-resolution
  ``(N, G, K, K, Ho, Wo)`` weight gradient (loop over the group's channels),
  then a PyTorch ``sum`` over the dims the weight broadcasts - as
  involution's backward did.

Autograd follows docs/design.md section 4. Only used on CUDA (or on the CPU
with ``TRITON_INTERPRET=1``, for testing); this module imports Triton at
import time, so import it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .cases import Case

BLOCK = 256


@dataclass(frozen=True)
class Window:
    """Resolved window parameters of a case (stride 1; dilation 1)."""

    kh: int
    kw: int
    ph: int
    pw: int
    neighborhood: bool

    @staticmethod
    def of(case: Case) -> Window:
        return Window(
            case.kernel, case.kernel, case.padding, case.padding, case.window == "neighborhood"
        )


@triton.jit
def _start(o, K, P, L, NEIGH: tl.constexpr):
    """First input index of output ``o`` (stride 1, dilation 1)."""
    if NEIGH:
        s = tl.minimum(tl.maximum(o - K // 2, 0), L - K)
    else:
        s = o - P
    return s


@triton.jit
def _conn_kernel(
    x_ptr, w_ptr, y_ptr, total, C, H, W, Ho, Wo, CPG,
    sxn, sxc, sxh, sxw,
    swn, swg, swkh, swkw, swh, sww,
    KH, KW, PH, PW,
    NEIGH: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    ow = offs % Wo
    t = offs // Wo
    oh = t % Ho
    t = t // Ho
    c = t % C
    n = t // C
    h0 = _start(oh, KH, PH, H, NEIGH)
    w0 = _start(ow, KW, PW, W, NEIGH)
    x_base = n * sxn + c * sxc
    w_base = n * swn + (c // CPG) * swg + oh * swh + ow * sww
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for kh in range(0, KH):
        ih = h0 + kh
        row_ok = mask & (ih >= 0) & (ih < H)
        for kw in range(0, KW):
            iw = w0 + kw
            ok = row_ok & (iw >= 0) & (iw < W)
            xv = tl.load(x_ptr + x_base + ih * sxh + iw * sxw, mask=ok, other=0.0)
            wv = tl.load(w_ptr + w_base + kh * swkh + kw * swkw, mask=mask, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _conn_t_kernel(
    g_ptr, w_ptr, dx_ptr, total, C, H, W, Ho, Wo, CPG,
    sgn, sgc, sgh, sgw,
    swn, swg, swkh, swkw, swh, sww,
    KH, KW, PH, PW,
    NEIGH: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    iw = offs % W
    t = offs // W
    ih = t % H
    t = t // H
    c = t % C
    n = t // C
    g_base = n * sgn + c * sgc
    w_base = n * swn + (c // CPG) * swg
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    if NEIGH:
        # candidate outputs ih - KH + 1 .. ih + KH - 1; keep those whose window holds ih
        for jh in range(0, 2 * KH - 1):
            oh = ih - KH + 1 + jh
            kh = ih - _start(oh, KH, PH, H, NEIGH)
            row_ok = mask & (oh >= 0) & (oh < Ho) & (kh >= 0) & (kh < KH)
            for jw in range(0, 2 * KW - 1):
                ow = iw - KW + 1 + jw
                kw = iw - _start(ow, KW, PW, W, NEIGH)
                ok = row_ok & (ow >= 0) & (ow < Wo) & (kw >= 0) & (kw < KW)
                gv = tl.load(g_ptr + g_base + oh * sgh + ow * sgw, mask=ok, other=0.0)
                wv = tl.load(
                    w_ptr + w_base + kh * swkh + kw * swkw + oh * swh + ow * sww,
                    mask=ok, other=0.0,
                )
                acc += gv.to(tl.float32) * wv.to(tl.float32)
    else:
        # output oh reads ih at tap kh when oh - PH + kh == ih
        for kh in range(0, KH):
            oh = ih + PH - kh
            row_ok = mask & (oh >= 0) & (oh < Ho)
            for kw in range(0, KW):
                ow = iw + PW - kw
                ok = row_ok & (ow >= 0) & (ow < Wo)
                gv = tl.load(g_ptr + g_base + oh * sgh + ow * sgw, mask=ok, other=0.0)
                wv = tl.load(
                    w_ptr + w_base + kh * swkh + kw * swkw + oh * swh + ow * sww,
                    mask=ok, other=0.0,
                )
                acc += gv.to(tl.float32) * wv.to(tl.float32)
    tl.store(dx_ptr + offs, acc.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _corr_kernel(
    a_ptr, b_ptr, out_ptr, total, G, H, W, Ho, Wo, CPG,
    san, sac, sah, saw,
    sbn, sbc, sbh, sbw,
    KH, KW, PH, PW,
    NEIGH: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    ow = offs % Wo
    t = offs // Wo
    oh = t % Ho
    t = t // Ho
    kw = t % KW
    t = t // KW
    kh = t % KH
    t = t // KH
    grp = t % G
    n = t // G
    ih = _start(oh, KH, PH, H, NEIGH) + kh
    iw = _start(ow, KW, PW, W, NEIGH) + kw
    ok = mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    a_base = n * san + oh * sah + ow * saw
    b_base = n * sbn + ih * sbh + iw * sbw
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for j in range(0, CPG):
        c = grp * CPG + j
        av = tl.load(a_ptr + a_base + c * sac, mask=ok, other=0.0)
        bv = tl.load(b_ptr + b_base + c * sbc, mask=ok, other=0.0)
        acc += av.to(tl.float32) * bv.to(tl.float32)
    tl.store(out_ptr + offs, acc, mask=mask)


def _weight_strides(w: torch.Tensor) -> list[int]:
    """Strides of the 6-D weight, 0 along broadcast (size-1) dims n, h, w."""
    s = list(w.stride())
    for d in (0, 4, 5):
        if w.shape[d] == 1:
            s[d] = 0
    return [s[0], s[1], s[2], s[3], s[4], s[5]]


def _grid(total: int) -> tuple[int]:
    return (triton.cdiv(total, BLOCK),)


def conn(x: torch.Tensor, w: torch.Tensor, win: Window) -> torch.Tensor:
    """``y = conn(x, w)``, contiguous NCHW."""
    N, C, H, W = x.shape
    Ho = H if win.neighborhood else H + 2 * win.ph - win.kh + 1
    Wo = W if win.neighborhood else W + 2 * win.pw - win.kw + 1
    y = torch.empty((N, C, Ho, Wo), dtype=x.dtype, device=x.device)
    total = y.numel()
    _conn_kernel[_grid(total)](
        x, w, y, total, C, H, W, Ho, Wo, C // w.shape[1],
        *x.stride(), *_weight_strides(w),
        win.kh, win.kw, win.ph, win.pw,
        NEIGH=win.neighborhood, BLOCK=BLOCK,
    )
    return y


def conn_t(g: torch.Tensor, w: torch.Tensor, win: Window, in_size: tuple[int, int]) -> torch.Tensor:
    """``dx = conn_T(g, w)`` of size ``in_size``, contiguous NCHW."""
    N, C, Ho, Wo = g.shape
    H, W = in_size
    dx = torch.empty((N, C, H, W), dtype=g.dtype, device=g.device)
    total = dx.numel()
    _conn_t_kernel[_grid(total)](
        g, w, dx, total, C, H, W, Ho, Wo, C // w.shape[1],
        *g.stride(), *_weight_strides(w),
        win.kh, win.kw, win.ph, win.pw,
        NEIGH=win.neighborhood, BLOCK=BLOCK,
    )
    return dx


def corr(
    a: torch.Tensor, b: torch.Tensor, weight_shape: tuple[int, ...], win: Window
) -> torch.Tensor:
    """``w = corr(a, b)``: full-resolution per lane, then summed over broadcast dims."""
    N, C, Ho, Wo = a.shape
    H, W = b.shape[2:]
    Nw, G, KH, KW, Hw, Ww = weight_shape
    full = torch.empty((N, G, KH, KW, Ho, Wo), dtype=torch.float32, device=a.device)
    total = full.numel()
    _corr_kernel[_grid(total)](
        a, b, full, total, G, H, W, Ho, Wo, C // G,
        *a.stride(), *b.stride(),
        KH, KW, win.ph, win.pw,
        NEIGH=win.neighborhood, BLOCK=BLOCK,
    )
    dims = [d for d, size in ((0, Nw), (4, Hw), (5, Ww)) if size == 1 and full.shape[d] > 1]
    if dims:
        full = full.sum(dim=dims, keepdim=True)
    return full.to(a.dtype)


class _Conn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, win: Window) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.win = win
        return conn(x, w, win)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        dx = conn_t(g, w, ctx.win, x.shape[2:]) if ctx.needs_input_grad[0] else None
        dw = corr(g, x, tuple(w.shape), ctx.win) if ctx.needs_input_grad[1] else None
        return dx, dw, None


class _Corr(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, a: torch.Tensor, b: torch.Tensor, shape: tuple[int, ...], win: Window
    ) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        ctx.win = win
        return corr(a, b, shape, win)

    @staticmethod
    def backward(ctx, gw: torch.Tensor):
        a, b = ctx.saved_tensors
        da = conn(b, gw, ctx.win) if ctx.needs_input_grad[0] else None
        db = conn_t(a, gw, ctx.win, b.shape[2:]) if ctx.needs_input_grad[1] else None
        return da, db, None, None


def naive_conn(case: Case):
    """``f(x, w) -> y`` with autograd, on the naive kernels."""
    win = Window.of(case)
    return lambda x, w: _Conn.apply(x, w, win)


def naive_corr(case: Case):
    """``f(a, b) -> w`` with autograd, on the naive kernels."""
    win, shape = Window.of(case), case.weight_shape
    return lambda a, b: _Corr.apply(a, b, shape, win)
