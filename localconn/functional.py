"""The public functional API: the three primitives of docs/design.md section 4.

Each function validates its arguments (raising ``ValueError``/``TypeError``
that name the argument), applies ``torch.autocast`` like ``conv2d`` does,
normalises the window arguments and calls the custom op in
:mod:`localconn.ops`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from . import ops
from .backends import check_backend_name
from .geometry import IntPair, Padding
from .validation import check_conn, check_conn_transpose, check_corr

_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu")
_CASTABLE = (torch.float16, torch.bfloat16, torch.float32)


def _autocast(*tensors: Optional[Tensor]) -> tuple[Optional[Tensor], ...]:
    """Cast to the autocast dtype if autocast is on for their device, as ``conv2d`` is.

    Like PyTorch's autocast, float64 tensors are left alone.
    """
    first = next((t for t in tensors if isinstance(t, Tensor)), None)
    if first is None or first.device.type not in _AUTOCAST_DEVICES:
        return tensors
    device = first.device.type
    if not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(
        t.to(dtype) if isinstance(t, Tensor) and t.dtype in _CASTABLE else t for t in tensors
    )


def local_conn2d(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    window: str = "sliding",
    backend: Optional[str] = None,
) -> Tensor:
    """The channel-wise locally-connected layer.

    ``y[n, c, h, w] = bias[c] + sum_{kh, kw} W[n', g(c), kh, kw, h', w'] *
    x[n, c, ih(h, kh), iw(w, kw)]`` where ``weight`` has the 6-D shape
    ``(Nw, Cw, Kh, Kw, Hw, Ww)`` and broadcasts: ``Nw`` is 1 (static) or
    ``N`` (dynamic), ``Cw`` is ``C``, a divisor ``G`` of ``C`` (channel ``c``
    uses group ``c // (C // G)``) or 1, ``Hw``/``Ww`` are 1 (shared across
    positions) or the output size. Taps outside the image read 0.

    Args:
        x: ``(N, C, H, W)`` input (NCHW or channels_last; the output follows).
        weight: ``(Nw, Cw, Kh, Kw, Hw, Ww)``, any strides (an attention map
            ``(N, G, Ho, Wo, Kh, Kw)`` is passed as ``.permute(0, 1, 4, 5, 2, 3)``).
        bias: optional ``(C,)``.
        stride, padding, dilation: per axis (int or ``(h, w)``); ``padding``
            also ``"same"`` (stride 1) or ``"valid"``. Sliding window only,
            except ``dilation`` for ``"neighborhood"``.
        window: ``"sliding"`` (convolution), ``"neighborhood"`` (neighborhood
            attention: the window is shifted inside the image) or ``"block"``
            (Swin: non-overlapping ``Kh x Kw`` blocks).
        backend: ``None``/``"auto"``, ``"reference"``, ``"cpu"``, ``"triton"`` or ``"cuda"``.

    Returns:
        ``(N, C, Ho, Wo)``.

    Example (a 3x3 depth-wise convolution, weight shared across positions)::

        >>> x = torch.randn(2, 8, 16, 16)
        >>> w = torch.randn(1, 8, 3, 3, 1, 1)
        >>> local_conn2d(x, w, padding=1).shape
        torch.Size([2, 8, 16, 16])
    """
    x, weight, bias = _autocast(x, weight, bias)
    geo = check_conn(x, weight, bias, stride, padding, dilation, window)
    backend = check_backend_name(backend)
    return ops.run_conn2d(x, weight, bias, geo.stride, geo.padding, geo.dilation, geo.window, backend)


def local_conn2d_transpose(
    g: Tensor,
    weight: Tensor,
    input_size: Sequence[int],
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    window: str = "sliding",
    backend: Optional[str] = None,
) -> Tensor:
    """The transpose of :func:`local_conn2d`: its gradient with respect to ``x``.

    ``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] * g[n, c, o]``
    (per axis pair), i.e. every output scatters its weighted value back to
    the input positions its window reads. In local attention it is the
    gradient of the keys/values.

    Args:
        g: ``(N, C, Ho, Wo)``.
        weight: ``(Nw, Cw, Kh, Kw, Hw, Ww)`` as in :func:`local_conn2d`.
        input_size: ``(H, W)`` (or ``(N, C, H, W)``) of the result; needed
            because strided windows map several input sizes to one output size.

    Returns:
        ``(N, C, H, W)``.

    Example::

        >>> g = torch.randn(2, 8, 8, 8)
        >>> w = torch.randn(1, 8, 3, 3, 1, 1)
        >>> local_conn2d_transpose(g, w, (16, 16), stride=2, padding=1).shape
        torch.Size([2, 8, 16, 16])
    """
    g, weight = _autocast(g, weight)
    geo = check_conn_transpose(g, weight, input_size, stride, padding, dilation, window)
    backend = check_backend_name(backend)
    return ops.run_conn2d_transpose(
        g, weight, list(geo.in_size), geo.stride, geo.padding, geo.dilation, geo.window, backend
    )


def local_corr2d(
    a: Tensor,
    b: Tensor,
    weight_shape: Sequence[int],
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    window: str = "sliding",
    backend: Optional[str] = None,
) -> Tensor:
    """Local correlation: the gradient of :func:`local_conn2d` with respect to the weight.

    ``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]``, summed over every
    dim that ``weight_shape`` broadcasts (the batch if ``Nw == 1``, the
    channels of a group, positions along an axis with ``Hw``/``Ww == 1``).
    With ``weight_shape = (N, heads, K, K, H, W)`` it is local attention's
    ``q · k`` in the layout :func:`local_conn2d` consumes.

    Args:
        a: ``(N, C, Ho, Wo)`` (e.g. the output gradient, or the queries).
        b: ``(N, C, H, W)`` (e.g. the input, or the keys).
        weight_shape: the 6-D ``(Nw, Cw, Kh, Kw, Hw, Ww)`` of the result.

    Example (neighborhood-attention logits, 2 heads, 5x5 window)::

        >>> q, k = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
        >>> local_corr2d(q, k, (2, 2, 5, 5, 12, 12), window="neighborhood").shape
        torch.Size([2, 2, 5, 5, 12, 12])
    """
    a, b = _autocast(a, b)
    geo, shape = check_corr(a, b, weight_shape, stride, padding, dilation, window)
    backend = check_backend_name(backend)
    return ops.run_corr2d(a, b, list(shape), geo.stride, geo.padding, geo.dilation, geo.window, backend)
