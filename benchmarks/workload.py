"""What one case computes: its random inputs and the op built from primitives.

Every provider is a function ``f(*inputs) -> output`` over the case's
differentiable inputs (``(x, w)`` for conn, ``(a, b)`` for corr, ``(q, k,
v)`` for attention). This file makes those inputs (random normal, never
zeros, in the requested dtype and memory layout) and composes the attention
mode from a provider's corr and conn, so that every unfused provider does the
same softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .cases import Case

Fn = Callable[..., torch.Tensor]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
LAYOUTS: dict[str, torch.memory_format] = {
    "nchw": torch.contiguous_format,
    "channels_last": torch.channels_last,
}


@dataclass(frozen=True)
class Setting:
    """Where and how a case runs."""

    device: torch.device
    dtype: torch.dtype
    layout: str
    quick: bool = False

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")


@dataclass
class Inputs:
    """The differentiable inputs of a case and an upstream gradient for its output."""

    tensors: tuple[torch.Tensor, ...]
    grad_out: torch.Tensor


def _randn(shape: tuple[int, ...], setting: Setting, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, device=setting.device, dtype=setting.dtype, generator=gen)


def _image(shape: tuple[int, ...], setting: Setting, gen: torch.Generator) -> torch.Tensor:
    t = _randn(shape, setting, gen)
    return t.contiguous(memory_format=LAYOUTS[setting.layout]) if t.dim() == 4 else t


def make_weight(case: Case, setting: Setting, gen: torch.Generator) -> torch.Tensor:
    """The 6-D weight, in the case's weight layout (a permuted view for attention)."""
    Nw, G, Kh, Kw, Hw, Ww = case.weight_shape
    if case.weight_layout == "attention":
        return _randn((Nw, G, Hw, Ww, Kh, Kw), setting, gen).permute(0, 1, 4, 5, 2, 3)
    return _randn(case.weight_shape, setting, gen)


def make_inputs(case: Case, setting: Setting, seed: int = 0) -> Inputs:
    """Random normal inputs (and output gradient) for ``case`` under ``setting``."""
    gen = torch.Generator(device=setting.device).manual_seed(seed)
    if case.op == "conn":
        tensors: tuple[torch.Tensor, ...] = (
            _image(case.image_shape, setting, gen),
            make_weight(case, setting, gen),
        )
    else:
        n = 2 if case.op == "corr" else 3
        tensors = tuple(_image(case.image_shape, setting, gen) for _ in range(n))
    return Inputs(tensors, _image(case.out_shape, setting, gen))


def window_kwargs(case: Case) -> dict:
    """Keyword arguments of the localconn ops for the case's window."""
    if case.window == "sliding":
        return {"padding": case.padding}
    return {"window": case.window}


def softmax_taps(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the ``Kh * Kw`` taps of a 6-D ``(N, G, Kh, Kw, H, W)`` tensor."""
    N, G, Kh, Kw, H, W = logits.shape
    return logits.reshape(N, G, Kh * Kw, H, W).softmax(dim=2).view(N, G, Kh, Kw, H, W)


def unfused_attention(case: Case, corr: Fn, conn: Fn) -> Fn:
    """``y = conn(v, softmax_taps(corr(q * scale, k)))`` from a provider's corr and conn."""
    scale = case.scale

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return conn(v, softmax_taps(corr(q * scale, k)))

    return attention


def fused_attention_op(case: Case) -> Fn:
    """The attention case through localconn's fused kernels (``fused=True``: no fallback):
    Triton's on CUDA tensors, the CPU backend's on CPU tensors."""
    from localconn.window_attention import window_attention

    kernel = (case.kernel, case.kernel)

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        backend = "cpu" if q.device.type == "cpu" else "triton"
        return window_attention(q, k, v, case.cw, kernel, (1, 1), window=case.window,
                                scale=case.scale, backend=backend, fused=True)

    return attention


def localconn_op(case: Case, backend: str) -> Fn:
    """The case's op through the public localconn API, forced onto ``backend``."""
    import localconn

    kw = dict(window_kwargs(case), backend=backend)
    ws = case.weight_shape

    def conn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return localconn.local_conn2d(x, w, **kw)

    def corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return localconn.local_corr2d(a, b, ws, **kw)

    if case.op == "conn":
        return conn
    if case.op == "corr":
        return corr
    return unfused_attention(case, corr, conn)
