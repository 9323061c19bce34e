"""NATTEN-compatible neighborhood attention: ``na2d``, ``na2d_qk`` and ``na2d_av``.

NATTEN's functional API on localconn's primitives, so that a NATTEN user
changes one import. With ``i(o, k) = start(o) + k * d`` the neighborhood
window of docs/design.md section 3 along each axis, query ``o = (y, x)`` of head
``h`` attends to the ``Kh x Kw`` keys of its window::

    L[o, k] = scale * q[o] . k[i(o, k)] + rpb[h, delta_h + Kh - 1, delta_w + Kw - 1]
    out[o]  = sum_k softmax_k(L[o, :]) v[i(o, k)]

with ``delta = (i(o, k) - o) / d`` the true key - query offset per axis (at
the border the window is shifted inside the image, so ``delta`` is not a
function of the tap alone; NATTEN indexes its bias the same way).

Layouts (NATTEN's):

* :func:`na2d` (NATTEN's fused op): heads-last ``(B, H, W, heads, D)``
  query, key and value; the value's head dim may differ. A contiguous
  heads-last tensor *is* a ``channels_last`` ``(B, heads * D, H, W)`` image,
  so it reaches the primitives as a view, never a copy.
* :func:`na2d_qk` / :func:`na2d_av` (NATTEN's unfused ops, up to 0.17):
  heads-first ``(B, heads, H, W, D)`` query, key, value and an attention map
  ``(B, heads, H, W, Kh * Kw)``, tap ``k = kh * Kw + kw``. ``na2d_qk`` does
  not scale (the caller scales the query, as with NATTEN).

``rpb`` is NATTEN's relative position bias ``(heads, 2Kh - 1, 2Kw - 1)``.
``is_causal`` (an axis or a pair): :func:`na2d` takes a causal window along
both axes, the ``K`` keys ``o - (K - 1) d, ..., o - d, o`` of the query's
dilation group that lie in the image (fewer at the start of an axis). A
window causal along one axis only, and causal windows in the unfused ops,
raise ``ValueError``: localconn's windows are one kind for both axes, and
NATTEN's tap order for a truncated causal window is not ours to guess.
NATTEN's ``stride`` (strided neighborhoods, NATTEN >= 0.20) and
``additional_keys`` / ``additional_values`` are not part of localconn's
windows and raise ``ValueError`` naming them.

:func:`na2d` is :func:`~localconn.window_attention.window_attention`: it runs the
fused kernels where they can (:mod:`localconn.fused_attention`:
Triton on a CUDA device, 16-bit (float32 with ``fused=True``), head dims up to 128;
the CPU backend's on CPU tensors, float32 and 16-bit, any head dim;
no ``(B, heads, Kh, Kw, H, W)`` map in memory, forward or backward) and otherwise
:func:`~localconn.local_corr2d`, a float32 softmax and
:func:`~localconn.local_conn2d`, which every backend, autograd (gradients for
query, key, value and ``rpb``), the CPU, ``torch.compile`` and
``FlopCounterMode`` serve as they serve the primitives. ``na2d_qk`` and
``na2d_av`` are the primitives themselves.

Example (migrating from NATTEN)::

    >>> # from natten.functional import na2d        # before
    >>> from localconn import na2d                  # after
    >>> q = k = v = torch.randn(2, 14, 14, 4, 16)   # (B, H, W, heads, D)
    >>> rpb = torch.zeros(4, 13, 13)                # (heads, 2K - 1, 2K - 1)
    >>> na2d(q, k, v, kernel_size=7, dilation=2, rpb=rpb).shape
    torch.Size([2, 14, 14, 4, 16])
"""

from __future__ import annotations

from typing import Optional, Union

from torch import Tensor

from .geometry import IntPair, pair
from .validation import check_same, check_tensor
from .window_attention import window_aggregate, window_attention, window_logits

Causal = Union[bool, tuple[bool, bool]]

_HEADS_LAST = "(B, H, W, heads, D)"
_HEADS_FIRST = "(B, heads, H, W, D)"


def _causal_pair(is_causal: object) -> tuple[bool, bool]:
    """``is_causal`` as a pair of bools (NATTEN takes a bool or one per axis)."""
    if isinstance(is_causal, bool):
        return is_causal, is_causal
    if isinstance(is_causal, (tuple, list)) and len(is_causal) == 2 and all(
        isinstance(c, bool) for c in is_causal
    ):
        return bool(is_causal[0]), bool(is_causal[1])
    raise ValueError(f"is_causal must be a bool or a pair of bools, got {is_causal!r}")


def _refuse(name: str, value: object, why: str) -> None:
    if value is not None:
        raise ValueError(f"{name} is not supported by localconn's na2d: {why}")


def _check_unsupported(stride: IntPair, additional_keys: object,
                       additional_values: object) -> None:
    if pair(stride, "stride") != (1, 1):
        raise ValueError(
            f"stride must be 1, got {stride!r}: strided neighborhoods (NATTEN >= 0.20) are not "
            "one of localconn's windows (docs/design.md section 3)"
        )
    _refuse("additional_keys", additional_keys, "cross-attention to extra keys is not a local window")
    _refuse("additional_values", additional_values, "cross-attention to extra keys is not a local window")


def _window_args(kernel_size: IntPair, dilation: IntPair) -> tuple[tuple[int, int], tuple[int, int]]:
    kernel, dil = pair(kernel_size, "kernel_size"), pair(dilation, "dilation")
    if min(kernel) < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size!r}")
    if min(dil) < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation!r}")
    return kernel, dil


def _check_rpb(rpb: Optional[Tensor], heads: int, kernel: tuple[int, int], ref: Tensor) -> None:
    if rpb is None:
        return
    check_tensor(rpb, "rpb", 3, "(heads, 2Kh - 1, 2Kw - 1)")
    check_same(ref, "query", rpb, "rpb")
    want = (heads, 2 * kernel[0] - 1, 2 * kernel[1] - 1)
    if tuple(rpb.shape) != want:
        raise ValueError(f"rpb must have shape (heads, 2Kh - 1, 2Kw - 1) = {want}, "
                         f"got {tuple(rpb.shape)}")


def _heads_last_image(t: Tensor) -> Tensor:
    """``(B, H, W, heads, D)`` -> ``(B, heads * D, H, W)`` (a channels_last view when ``t`` is
    contiguous)."""
    B, H, W, heads, D = t.shape
    return t.permute(0, 3, 4, 1, 2).reshape(B, heads * D, H, W)


def _heads_first_image(t: Tensor) -> Tensor:
    """``(B, heads, H, W, D)`` -> ``(B, heads * D, H, W)``."""
    B, heads, H, W, D = t.shape
    return t.permute(0, 1, 4, 2, 3).reshape(B, heads * D, H, W)


def _check_qkv(query: Tensor, key: Tensor, value: Optional[Tensor], layout: str) -> None:
    check_tensor(query, "query", 5, layout)
    check_tensor(key, "key", 5, layout)
    check_same(query, "query", key, "key")
    if key.shape != query.shape:
        raise ValueError(f"key must have the shape of query {tuple(query.shape)} {layout}, "
                         f"got {tuple(key.shape)}")
    if value is not None:
        check_tensor(value, "value", 5, layout)
        check_same(query, "query", value, "value")
        if value.shape[:-1] != query.shape[:-1]:
            raise ValueError(
                f"value must match query {tuple(query.shape)} {layout} in every dim but the head "
                f"dim, got {tuple(value.shape)}"
            )


def na2d(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    is_causal: Causal = False,
    rpb: Optional[Tensor] = None,
    scale: Optional[float] = None,
    *,
    stride: IntPair = 1,
    additional_keys: Optional[Tensor] = None,
    additional_values: Optional[Tensor] = None,
    backend: Optional[str] = None,
    fused: Union[bool, str, None] = "auto",
) -> Tensor:
    """2-D neighborhood attention on heads-last tensors (NATTEN's ``na2d``).

    ``out[b, y, x, h] = sum_k softmax_k(scale * q . k[i(o, k)] + rpb) v[i(o, k)]`` over the
    ``Kh x Kw`` neighborhood window with ``dilation`` (see the module docstring), softmax
    in float32 for 16-bit inputs.

    Args:
        query, key: ``(B, H, W, heads, D)``, ``H >= Kh * dh`` and ``W >= Kw * dw``.
        value: ``(B, H, W, heads, Dv)``.
        kernel_size, dilation: an int or a pair ``(h, w)``.
        is_causal: a bool, or a pair that must hold the same bool twice.
        rpb: NATTEN's relative position bias ``(heads, 2Kh - 1, 2Kw - 1)``.
        scale: the logit scale, default ``D ** -0.5``.
        stride, additional_keys, additional_values: NATTEN's; only the defaults.
        backend: forwarded to the primitives (``None``: the fastest available).
        fused: ``"auto"`` the fused kernel where it runs (see :mod:`localconn.fused_attention`),
            else the unfused primitives; ``True`` demands it (``ValueError`` saying why it
            cannot run); ``False`` the unfused primitives.

    Returns:
        ``(B, H, W, heads, Dv)``, contiguous.

    Example::

        >>> q = k = v = torch.randn(1, 9, 9, 2, 8)
        >>> na2d(q, k, v, (3, 5), is_causal=True).shape
        torch.Size([1, 9, 9, 2, 8])
    """
    _check_qkv(query, key, value, _HEADS_LAST)
    _check_unsupported(stride, additional_keys, additional_values)
    kernel, dil = _window_args(kernel_size, dilation)
    causal = _causal_pair(is_causal)
    if causal[0] != causal[1]:
        raise ValueError(f"is_causal must be the same along both axes, got {is_causal!r}: "
                         "localconn's windows are one kind for both axes")
    B, H, W, heads, D = query.shape
    _check_rpb(rpb, heads, kernel, query)
    if scale is None:
        scale = D**-0.5
    elif not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise TypeError(f"scale must be None or a float, got {type(scale).__name__} {scale!r}")
    out = window_attention(_heads_last_image(query), _heads_last_image(key),
                           _heads_last_image(value), heads, kernel, dil,
                           window="causal" if causal[0] else "neighborhood", rpb=rpb,
                           scale=float(scale), backend=backend, fused=fused)
    Dv = value.shape[-1]
    return out.reshape(B, heads, Dv, H, W).permute(0, 3, 4, 1, 2).contiguous()


def na2d_qk(
    query: Tensor,
    key: Tensor,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    additional_keys: Optional[Tensor] = None,
    is_causal: Causal = False,
    rpb: Optional[Tensor] = None,
    *,
    backend: Optional[str] = None,
) -> Tensor:
    """Neighborhood attention logits on heads-first tensors (NATTEN's unfused ``na2d_qk``).

    ``attn[b, h, y, x, kh * Kw + kw] = q[b, h, y, x] . k[b, h, i_h(y, kh), i_w(x, kw)]
    + rpb[h, delta_h + Kh - 1, delta_w + Kw - 1]``, unscaled.

    Args:
        query, key: ``(B, heads, H, W, D)``.
        kernel_size, dilation: an int or a pair ``(h, w)``.
        rpb: ``(heads, 2Kh - 1, 2Kw - 1)``.
        additional_keys, is_causal: NATTEN's; only the defaults (``ValueError`` otherwise).

    Returns:
        ``(B, heads, H, W, Kh * Kw)``, contiguous.

    Example::

        >>> q = k = torch.randn(1, 2, 9, 9, 8)
        >>> na2d_qk(q, k, 3).softmax(-1).shape
        torch.Size([1, 2, 9, 9, 9])
    """
    _check_qkv(query, key, None, _HEADS_FIRST)
    _check_unsupported(1, additional_keys, None)
    if any(_causal_pair(is_causal)):
        raise ValueError("is_causal is supported by na2d only, not by the unfused na2d_qk")
    kernel, dil = _window_args(kernel_size, dilation)
    B, heads, H, W, _ = query.shape
    _check_rpb(rpb, heads, kernel, query)
    logits, _ = window_logits(_heads_first_image(query), _heads_first_image(key), heads,
                              kernel, dil, rpb=rpb, backend=backend)
    return logits.permute(0, 1, 4, 5, 2, 3).reshape(B, heads, H, W, kernel[0] * kernel[1])


def na2d_av(
    attn: Tensor,
    value: Tensor,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    additional_values: Optional[Tensor] = None,
    is_causal: Causal = False,
    *,
    backend: Optional[str] = None,
) -> Tensor:
    """Neighborhood aggregation on heads-first tensors (NATTEN's unfused ``na2d_av``).

    ``out[b, h, y, x] = sum_{kh, kw} attn[b, h, y, x, kh * Kw + kw] v[b, h, i_h(y, kh), i_w(x, kw)]``.

    Args:
        attn: ``(B, heads, H, W, Kh * Kw)`` (read through a view, no copy).
        value: ``(B, heads, H, W, D)``.
        kernel_size, dilation: an int or a pair ``(h, w)``.
        additional_values, is_causal: NATTEN's; only the defaults (``ValueError`` otherwise).

    Returns:
        ``(B, heads, H, W, D)``, contiguous.

    Example::

        >>> a = torch.randn(1, 2, 9, 9, 15).softmax(-1)
        >>> na2d_av(a, torch.randn(1, 2, 9, 9, 8), (3, 5)).shape
        torch.Size([1, 2, 9, 9, 8])
    """
    check_tensor(value, "value", 5, _HEADS_FIRST)
    check_tensor(attn, "attn", 5, "(B, heads, H, W, Kh * Kw)")
    check_same(value, "value", attn, "attn")
    _check_unsupported(1, None, additional_values)
    if any(_causal_pair(is_causal)):
        raise ValueError("is_causal is supported by na2d only, not by the unfused na2d_av")
    kernel, dil = _window_args(kernel_size, dilation)
    B, heads, H, W, D = value.shape
    want = (B, heads, H, W, kernel[0] * kernel[1])
    if tuple(attn.shape) != want:
        raise ValueError(f"attn must have shape (B, heads, H, W, Kh * Kw) = {want}, "
                         f"got {tuple(attn.shape)}")
    weight = attn.unflatten(4, kernel).permute(0, 1, 4, 5, 2, 3)  # (B, heads, Kh, Kw, H, W)
    out = window_aggregate(weight, _heads_first_image(value), kernel, dil, backend=backend)
    return out.reshape(B, heads, D, H, W).permute(0, 1, 3, 4, 2).contiguous()
