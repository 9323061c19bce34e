"""Validation of the public entry points (docs/design.md section 7).

Every public op calls one of :func:`check_conn`, :func:`check_conn_transpose`
or :func:`check_corr` before anything runs. They raise ``TypeError`` for
non-tensors, dtypes and devices and ``ValueError`` for ranks, sizes and
arguments, always naming the argument, what was expected and what was
given, and return the resolved :class:`~localconn.geometry.Geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from .geometry import MAX_SIZE, Geometry, IntPair, Padding, make_geometry

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
WEIGHT_DIMS = "(Nw, Cw, Kh, Kw, Hw, Ww)"
MAX_ELEMENTS = 2**62


def check_tensor(t: object, name: str, ndim: int, layout: str) -> torch.Tensor:
    """``t`` must be a dense floating tensor with ``ndim`` dims (``layout`` names them)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided or t.is_nested:
        kind = "a nested tensor" if t.is_nested else f"layout {t.layout}"
        raise TypeError(f"{name} must be a dense (strided) tensor, got {kind}; "
                        f"call .to_dense() first")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims {layout}, got shape {tuple(t.shape)}")
    return t


def _is(a: object, b: object) -> bool:
    """``a == b`` for ints and symbolic sizes (``torch.export``, dynamic ``torch.compile``).

    An explicit comparison, never ``a in (b, c)``: Dynamo evaluates a tuple's
    ``in`` on a symbolic size wrongly.
    """
    return bool(a == b)


def check_same(ref: torch.Tensor, ref_name: str, t: torch.Tensor, name: str) -> None:
    """``t`` must have the dtype and device of ``ref``."""
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}")
    if t.device != ref.device:
        raise TypeError(
            f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}"
        )


def check_weight_shape(
    shape: Sequence[int], name: str, batch: int, channels: int, out_size: tuple[int, int]
) -> None:
    """The broadcast rules of docs/design.md section 2 for a 6-D weight shape."""
    Nw, Cw, _, _, Hw, Ww = shape
    Ho, Wo = out_size
    shape = tuple(shape)
    if not (_is(Nw, 1) or _is(Nw, batch)):
        raise ValueError(
            f"{name} {WEIGHT_DIMS} must have Nw = 1 or the batch size {batch}, got shape {shape}"
        )
    if Cw < 1 or not _is(channels % Cw, 0):
        raise ValueError(
            f"{name} {WEIGHT_DIMS} must have Cw = a divisor of the {channels} channels "
            f"(C, a group count or 1), got shape {shape}"
        )
    if not (_is(Hw, 1) or _is(Hw, Ho)):
        raise ValueError(
            f"{name} {WEIGHT_DIMS} must have Hw = 1 or the output height {Ho}, got shape {shape}"
        )
    if not (_is(Ww, 1) or _is(Ww, Wo)):
        raise ValueError(
            f"{name} {WEIGHT_DIMS} must have Ww = 1 or the output width {Wo}, got shape {shape}"
        )


def check_kernel(shape: Sequence[int], name: str) -> tuple[int, int]:
    """The kernel dims ``(Kh, Kw)`` of a 6-D weight shape must be >= 1."""
    if min(shape[2:4]) < 1:
        raise ValueError(
            f"{name} {WEIGHT_DIMS} must have kernel sizes Kh, Kw >= 1, got shape {tuple(shape)}"
        )
    return (int(shape[2]), int(shape[3]))


def _size(v: object) -> object:
    """An int or a symbolic size as it is; a traced 0-dim size tensor (``torch.jit.trace``)
    as its int; anything else ``None``."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, torch.SymInt)):
        return v
    if (isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_floating_point()
            and not v.is_complex() and v.dtype != torch.bool):
        return int(v)
    return None


def _size_list(value: object, name: str, length: int) -> tuple:
    """A sequence of ``length`` ints (symbolic sizes stay symbolic)."""
    ok = isinstance(value, (tuple, list, torch.Size)) and len(value) == length
    sizes = tuple(_size(v) for v in value) if ok else ()
    if not ok or any(v is None for v in sizes):
        raise ValueError(f"{name} must be a sequence of {length} ints, got {value!r}")
    for v in sizes:
        if isinstance(v, int) and v > MAX_SIZE:
            raise ValueError(f"{name} must have sizes of at most {MAX_SIZE}, got {value!r}")
    return sizes


def check_output_size(numel: object, what: str) -> None:
    """The result may have at most ``2**62`` elements (64-bit index arithmetic with room)."""
    if isinstance(numel, int) and numel > MAX_ELEMENTS:
        raise ValueError(f"{what}: the result would have {numel} elements, more than 2**62")


def check_conn(
    x: object,
    weight: object,
    bias: object,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    window: str,
) -> Geometry:
    """Validate ``local_conn2d(x, weight, bias, ...)``; return the geometry."""
    x = check_tensor(x, "x", 4, "(N, C, H, W)")
    weight = check_tensor(weight, "weight", 6, WEIGHT_DIMS)
    check_same(x, "x", weight, "weight")
    N, C, H, W = x.shape
    if bias is not None:
        bias = check_tensor(bias, "bias", 1, "(C,)")
        check_same(x, "x", bias, "bias")
        if bias.shape[0] != C:
            raise ValueError(
                f"bias must have shape ({C},) (one per channel), got {tuple(bias.shape)}"
            )
    kernel = check_kernel(weight.shape, "weight")
    geo = make_geometry((H, W), kernel, stride, padding, dilation, window)
    check_output_size(N * C * geo.out_size[0] * geo.out_size[1],
                      f"stride {stride!r}, padding {padding!r}, dilation {dilation!r}")
    check_weight_shape(weight.shape, "weight", N, C, geo.out_size)
    return geo


def check_conn_transpose(
    g: object,
    weight: object,
    input_size: object,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    window: str,
) -> Geometry:
    """Validate ``local_conn2d_transpose(g, weight, input_size, ...)``.

    ``input_size`` is ``(H, W)`` or ``(N, C, H, W)`` (then N, C must match ``g``);
    the output size it implies must equal ``g``'s spatial size.
    """
    g = check_tensor(g, "g", 4, "(N, C, Ho, Wo)")
    weight = check_tensor(weight, "weight", 6, WEIGHT_DIMS)
    check_same(g, "g", weight, "weight")
    N, C, Ho, Wo = g.shape
    if isinstance(input_size, (tuple, list, torch.Size)) and len(input_size) == 4:
        size4 = _size_list(input_size, "input_size", 4)
        if size4[:2] != (N, C):
            raise ValueError(
                f"input_size (N, C, H, W) must have N, C = {N}, {C} as g, got {tuple(input_size)}"
            )
        size = size4[2:]
    else:
        size = _size_list(input_size, "input_size", 2)
    if min(size) < 1:
        raise ValueError(f"input_size must be positive, got {tuple(input_size)}")
    check_output_size(N * C * size[0] * size[1], f"input_size {tuple(input_size)!r}")
    kernel = check_kernel(weight.shape, "weight")
    geo = make_geometry(size, kernel, stride, padding, dilation, window)
    if geo.out_size != (Ho, Wo):
        raise ValueError(
            f"input_size {size} gives output size {geo.out_size} with these window arguments, "
            f"but g has spatial size {(Ho, Wo)}"
        )
    check_weight_shape(weight.shape, "weight", N, C, geo.out_size)
    return geo


def check_corr(
    a: object,
    b: object,
    weight_shape: object,
    stride: IntPair,
    padding: Padding,
    dilation: IntPair,
    window: str,
) -> tuple[Geometry, tuple[int, ...]]:
    """Validate ``local_corr2d(a, b, weight_shape, ...)``; return geometry and shape."""
    a = check_tensor(a, "a", 4, "(N, C, Ho, Wo)")
    b = check_tensor(b, "b", 4, "(N, C, H, W)")
    check_same(a, "a", b, "b")
    shape = _size_list(weight_shape, "weight_shape", 6)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(
            f"a and b must have the same (N, C), got a {tuple(a.shape)} and b {tuple(b.shape)}"
        )
    kernel = check_kernel(shape, "weight_shape")
    N, C, H, W = b.shape
    geo = make_geometry((H, W), kernel, stride, padding, dilation, window)
    if geo.out_size != tuple(a.shape[2:]):
        raise ValueError(
            f"a must have the output size {geo.out_size} that b's size {(H, W)} gives with these "
            f"window arguments, got a {tuple(a.shape)}"
        )
    check_weight_shape(shape, "weight_shape", N, C, geo.out_size)
    return geo, shape


# ---------------------------------------------------------------- modules


def check_module_input(x: object, channels: int, param_dtype: Optional[torch.dtype],
                       size: Optional[tuple[int, int]] = None,
                       unbatched: bool = False) -> torch.Tensor:
    """A module's input ``x``: a dense float ``(N, channels, H, W)`` tensor.

    ``size``: the ``(H, W)`` a module with position-specific static weights was
    built for. ``param_dtype``: the dtype of the module's parameters, which ``x``
    must share outside ``torch.autocast`` (a float64 input to a float32 module
    is refused with the fix in the message, as ``conv2d`` refuses it).
    ``unbatched``: the module also takes ``(channels, H, W)`` (given here with its
    batch dimension added; the message names both forms). An FX ``Proxy``
    (``torch.fx.symbolic_trace``) passes unchecked: its values are checked when the
    traced graph runs the module's leaf calls.
    """
    if isinstance(x, torch.fx.Proxy):
        return x  # type: ignore[return-value]
    layout = f"(N, {channels}, H, W)" + (f" or ({channels}, H, W)" if unbatched else "")
    x = check_tensor(x, "x", 4, layout)
    if not _is(x.shape[1], channels):
        raise ValueError(f"x must have {channels} channels, shape (N, {channels}, H, W), "
                         f"got shape {tuple(x.shape)}")
    if size is not None and not (_is(x.shape[2], size[0]) and _is(x.shape[3], size[1])):
        raise ValueError(f"x must have the spatial size {size} this layer's position-specific "
                         f"weights were built for (input_size), got shape {tuple(x.shape)}")
    autocast = x.device.type in ("cpu", "cuda", "xpu") and torch.is_autocast_enabled(
        x.device.type)
    if param_dtype is not None and x.dtype != param_dtype and not autocast:
        raise TypeError(f"x must have the dtype of the module's parameters ({param_dtype}), "
                        f"got {x.dtype}; convert one of them (e.g. module.to({x.dtype})) "
                        f"or run under torch.autocast")
    return x


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """A Python int (not a bool) of at least ``minimum``: TypeError / ValueError naming it."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_probability(value: object, name: str) -> float:
    """A dropout probability in ``[0, 1)``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)

