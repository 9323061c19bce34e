"""The ``native`` backend: PyTorch's own convolution kernels for static depth-wise problems.

Static depth-wise convolution (one ``Kh x Kw`` filter per channel, shared by the
batch and every position, sliding window, zero padding alike on both sides of an
axis) is exactly ``torch.nn.functional.conv2d(groups=C)``, for which PyTorch
already has tuned kernels: cuDNN's (NCHW and NHWC, with its own algorithm
choice), ATen's depth-wise CUDA kernels, oneDNN / ATen's on the CPU. On an H200
cuDNN's NHWC float16 kernels measured faster than ours in a few static
channels_last rows (``benchmarks/results/nvidia-h200/README.md``: 7x7 forward at
14x14-56x56, weight gradient at 14x14 and 28x28). Registering them as a backend
lets ``auto`` (which times every compiled backend once per problem signature,
:mod:`localconn.autoselect`) run them exactly where they are the faster choice,
so a static depth-wise layer is never slower than ``nn.Conv2d(groups=C)`` on the
GPU at hand. The three primitives, in conv2d's terms (``w[c] = W[0, g(c), :, :, 0, 0]``,
``g(c) = c // (C / G)``):

    conn2d(x, W)            = conv2d(x, w, bias, stride, padding, dilation, groups=C)
    conn2d_transpose(g, W)  = conv2d's input gradient   (aten.convolution_backward)
    corr2d(a, b)[0, g, k]   = sum over the group's channels of conv2d's weight gradient
                              (grad_output ``a``, input ``b``)

A weight shared by ``C / G > 1`` channels is expanded to one filter per channel
(``G * Kh * Kw`` values: nothing next to the images), and its gradient summed back
per group in float32. PyTorch's kernels accumulate in float32 for 16-bit inputs,
as docs/design.md requires. Determinism is PyTorch's: under
``torch.use_deterministic_algorithms(True)`` cuDNN picks deterministic algorithms
(``auto`` then times nothing and keeps the static order, in which this backend
comes last among the compiled ones).

Declines (``supports`` says which): position-specific or per-sample weights
(``Hw, Ww > 1`` or ``Nw > 1``: involution, dynamic depth-wise, attention), the
neighborhood and block windows, unequal padding on the two sides of an axis
(``padding="same"`` with an even kernel), and float16 on the CPU (whose
convolutions sum float16 products in float16).

Non-finite values follow PyTorch's convolution, the one place where this backend
may differ from the reference: where a non-finite filter tap (a non-finite output
gradient in the weight gradient) meets the zero padding, the reference forms
``Inf * 0 = NaN`` as docs/design.md says, while PyTorch's depth-wise kernels may
skip the padding's products (oneDNN's on the CPU do). Those border elements can
then be finite where the reference has NaN; the same channel's other outputs are
non-finite in both (``Inf * x``), so a diverged filter never goes unseen.

Example::

    >>> x = torch.randn(2, 8, 15, 15)
    >>> w = torch.randn(1, 8, 3, 3, 1, 1)
    >>> y = localconn.local_conn2d(x, w, padding=1, backend="native")
    >>> torch.testing.assert_close(y, F.conv2d(x, w.view(8, 1, 3, 3), padding=1, groups=8))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F

from .geometry import Geometry
from .problem import Problem
from .reference import accumulation_dtype, memory_format_of

#: float types PyTorch's convolutions run (16-bit ones accumulate in float32)
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def available() -> Optional[str]:
    """Always ``None``: PyTorch's convolutions are part of every PyTorch."""
    return None


def supports(problem: Problem) -> Optional[str]:
    """``None`` for static depth-wise problems that conv2d computes as they are, else why not.

    Needs the sliding window, a weight shared by the batch and all positions
    (``Nw = Hw = Ww = 1``), equal padding on both sides of each axis and a float dtype.
    """
    Nw, _, _, _, Hw, Ww = problem.weight_shape
    geo = problem.geometry
    if geo.window != "sliding":
        return f"runs the sliding window (convolution) only, got window={geo.window!r}"
    if Nw != 1 or Hw != 1 or Ww != 1:
        return ("runs static depth-wise weights only (one filter per channel group, shared by "
                f"the batch and all positions), got a weight of shape {problem.weight_shape}")
    top, bottom, left, right = geo.padding
    if top != bottom or left != right:
        return (f"conv2d pads both sides of an axis alike, got padding (top, bottom, left, "
                f"right) = {(top, bottom, left, right)}")
    if problem.dtype not in DTYPES:
        return f"needs float32, float16, bfloat16 or float64, got {problem.dtype}"
    if problem.dtype == torch.float16 and problem.device.type == "cpu":
        return ("PyTorch's CPU convolutions sum float16 products in float16 (docs/design.md "
                "asks for float32 sums): float16 runs on CUDA tensors only")
    return None


def _filters(weight: torch.Tensor, C: int) -> torch.Tensor:
    """``(1, G, Kh, Kw, 1, 1)`` -> conv2d's depth-wise ``(C, 1, Kh, Kw)`` (a view when G = C)."""
    G, Kh, Kw = weight.shape[1:4]
    w = weight.reshape(G, 1, Kh, Kw)
    return w if G == C else w.repeat_interleave(C // G, dim=0)


def _conv_args(geo: Geometry) -> tuple[list[int], list[int], list[int]]:
    """conv2d's ``stride``, ``padding`` (one per axis) and ``dilation``."""
    return geo.stride, [geo.h.pad_begin, geo.w.pad_begin], geo.dilation


def conn2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
           geo: Geometry) -> torch.Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[0, g(c), k] * x[n, c, i(o, k)]``: ``conv2d(groups=C)``.

    Example::

        >>> y = conn2d(x, w, None, make_geometry((15, 15), (3, 3), padding=1))
    """
    C = x.shape[1]
    stride, padding, dilation = _conv_args(geo)
    y = F.conv2d(x, _filters(weight, C), bias, stride, padding, dilation, C)
    return y.contiguous(memory_format=memory_format_of(x))


def conn2d_transpose(g: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[0, g(c), k] * g[n, c, o]``: conv2d's input
    gradient.

    Example::

        >>> xt = conn2d_transpose(g, w, make_geometry((15, 15), (3, 3), padding=1))
    """
    N, C = g.shape[:2]
    stride, padding, dilation = _conv_args(geo)
    shape = (N, C, *geo.in_size)
    # convolution_backward reads only the input's sizes for the input gradient
    placeholder = g.new_empty(1).expand(shape)
    grad = torch.ops.aten.convolution_backward(
        g, placeholder, _filters(weight, C), None, stride, padding, dilation, False, [0, 0], C,
        [True, False, False])[0]
    return grad.contiguous(memory_format=memory_format_of(g))


def corr2d(a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int],
           geo: Geometry) -> torch.Tensor:
    """``Ŵ[0, g, k] = sum_{n, c in g, o} a[n, c, o] * b[n, c, i(o, k)]``: conv2d's weight
    gradient (``a`` the output's gradient, ``b`` the input), summed over each group's channels.

    Example::

        >>> dw = corr2d(g, x, (1, 8, 3, 3, 1, 1), make_geometry((15, 15), (3, 3), padding=1))
    """
    C = b.shape[1]
    G, Kh, Kw = (int(s) for s in weight_shape[1:4])
    stride, padding, dilation = _conv_args(geo)
    # convolution_backward reads only the weight's sizes for the weight gradient
    placeholder = b.new_empty(1).expand(C, 1, Kh, Kw)
    grad = torch.ops.aten.convolution_backward(
        a, b, placeholder, None, stride, padding, dilation, False, [0, 0], C,
        [False, True, False])[1]
    if G != C:  # the group's channels share one filter: sum their gradients in float32
        grad = grad.reshape(G, C // G, Kh, Kw).sum(1, dtype=accumulation_dtype(grad.dtype))
        grad = grad.to(b.dtype)
    return grad.reshape(tuple(int(s) for s in weight_shape)).contiguous()
