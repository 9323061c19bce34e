"""The window: which input index each (output index, tap) pair reads.

This file holds the index arithmetic of docs/design.md section 3, written once
for the Python side: argument normalisation (ints, pairs, ``"same"``,
``"valid"``), the per-axis output size, and the input index
``i(o, k) = start(o) + k * d`` of each window. Backends that run in Python
(the reference) use :meth:`Axis.input_index` directly; compiled backends
receive the plain integers of :class:`Axis` and repeat the same formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch

WINDOWS = ("sliding", "neighborhood", "block")

IntPair = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int]]


#: largest window argument or spatial size accepted (kernel, stride, padding, dilation,
#: sizes); larger ones could only overflow the index arithmetic or the allocation
MAX_SIZE = 2**31 - 1


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def pair(value: IntPair, name: str) -> tuple[int, int]:
    """Normalise an int or an ``(h, w)`` pair to a tuple of two ints (at most ``MAX_SIZE``)."""
    if _is_int(value):
        out = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list, torch.Size))
        and len(value) == 2
        and all(_is_int(v) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")
    if max(out) > MAX_SIZE:
        raise ValueError(f"{name} must be at most {MAX_SIZE} (2**31 - 1), got {value!r}")
    return out


def check_window(window: object) -> str:
    """Return ``window`` if it names one of :data:`WINDOWS`, else raise ValueError."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(map(repr, WINDOWS))}, got {window!r}")
    return window  # type: ignore[return-value]


@dataclass(frozen=True)
class Axis:
    """One spatial axis of the window: sizes and parameters, all resolved ints.

    ``in_size`` is the input length ``L``, ``out_size`` the output length,
    ``pad_begin``/``pad_end`` the zero padding (sliding window only).
    """

    window: str
    in_size: int
    out_size: int
    kernel: int
    stride: int = 1
    pad_begin: int = 0
    pad_end: int = 0
    dilation: int = 1

    def start(self, o: torch.Tensor) -> torch.Tensor:
        """First input index read by output ``o`` (may be negative for sliding)."""
        if self.window == "sliding":
            return o * self.stride - self.pad_begin
        if self.window == "block":
            return torch.div(o, self.kernel, rounding_mode="floor") * self.kernel
        # neighborhood: clamp the window inside the dilation group r = o mod d
        d, K = self.dilation, self.kernel
        r = o % d
        group_len = torch.div(self.in_size - r + d - 1, d, rounding_mode="floor")
        centre = torch.div(o, d, rounding_mode="floor") - K // 2
        return r + d * torch.minimum(centre.clamp(min=0), group_len - K)

    def input_index(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(K, out_size)`` int64 table of ``i(o, k)``; ``-1`` marks an out-of-range tap."""
        o = torch.arange(self.out_size, device=device)
        k = torch.arange(self.kernel, device=device)
        i = self.start(o)[None, :] + k[:, None] * self.dilation
        return torch.where((i >= 0) & (i < self.in_size), i, torch.full_like(i, -1))

    def is_affine(self) -> bool:
        """True if ``i(o, k) = o * stride + k * dilation - pad_begin`` (sliding) or K == 1."""
        return self.window == "sliding" or self.kernel == 1


def sliding_out_size(L: int, K: int, s: int, pb: int, pe: int, d: int) -> int:
    """``floor((L + pb + pe - d*(K-1) - 1) / s) + 1`` (may be <= 0: caller checks)."""
    return (L + pb + pe - d * (K - 1) - 1) // s + 1


def resolve_padding(
    padding: Padding, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` from an int, a pair, ``"valid"`` or ``"same"``.

    ``"same"`` (stride 1 only) pads ``d * (K - 1)`` in total per axis, the odd
    extra element at the end, as ``torch.nn.functional.conv2d`` does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            out = []
            for K, d in zip(kernel, dilation):
                total = d * (K - 1)
                out.append((total // 2, total - total // 2))
            return (out[0], out[1])
        raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return ((ph, ph), (pw, pw))


@dataclass(frozen=True)
class Geometry:
    """Both axes of a problem; ``stride``/``padding``/``dilation`` as passed to the ops."""

    h: Axis
    w: Axis

    @property
    def window(self) -> str:
        return self.h.window

    @property
    def kernel(self) -> tuple[int, int]:
        return (self.h.kernel, self.w.kernel)

    @property
    def in_size(self) -> tuple[int, int]:
        return (self.h.in_size, self.w.in_size)

    @property
    def out_size(self) -> tuple[int, int]:
        return (self.h.out_size, self.w.out_size)

    @property
    def stride(self) -> list[int]:
        return [self.h.stride, self.w.stride]

    @property
    def padding(self) -> list[int]:
        """``[top, bottom, left, right]``."""
        return [self.h.pad_begin, self.h.pad_end, self.w.pad_begin, self.w.pad_end]

    @property
    def dilation(self) -> list[int]:
        return [self.h.dilation, self.w.dilation]


def make_geometry(
    in_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    window: str = "sliding",
) -> Geometry:
    """Validate the window arguments for an input of spatial size ``in_size``.

    Raises ValueError naming the argument for anything docs/design.md section 3
    does not allow (stride/dilation < 1, negative padding, an empty output,
    ``neighborhood`` with ``L < K*d``, ``block`` with ``L % K != 0`` or with
    non-default stride/padding/dilation, an unknown window).

    Example::

        >>> make_geometry((7, 7), (3, 3), padding="same").out_size
        (7, 7)
    """
    window = check_window(window)
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    if min(s) < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    if min(d) < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation!r}")
    if min(kernel) < 1:
        raise ValueError(f"kernel size must be >= 1, got {kernel}")
    pads = resolve_padding(padding, kernel, s, d)
    if window != "sliding":
        if s != (1, 1):
            raise ValueError(f"window={window!r} needs stride=1, got stride={stride!r}")
        if pads != ((0, 0), (0, 0)):
            raise ValueError(f"window={window!r} needs padding=0, got padding={padding!r}")
        if window == "block" and d != (1, 1):
            raise ValueError(f"window='block' needs dilation=1, got dilation={dilation!r}")
    axes = []
    for name, L, K, si, (pb, pe), di in zip(("height", "width"), in_size, kernel, s, pads, d):
        if window == "sliding":
            out = sliding_out_size(L, K, si, pb, pe, di)
            if out < 1:
                raise ValueError(
                    f"input {name} {L} with padding ({pb}, {pe}) is smaller than the dilated "
                    f"kernel {di * (K - 1) + 1} (kernel {K}, dilation {di}): the output would be "
                    f"empty"
                )
        elif window == "neighborhood":
            if L < K * di:
                raise ValueError(
                    f"window='neighborhood' needs input {name} >= kernel * dilation = {K * di}, "
                    f"got {L}"
                )
            out = L
        else:
            if L % K:
                raise ValueError(
                    f"window='block' needs input {name} divisible by the kernel size {K}, got {L}"
                )
            out = L
        axes.append(Axis(window, L, out, K, si, pb, pe, di))
    return Geometry(axes[0], axes[1])


def geometry_from_op_args(
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    window: str,
) -> Geometry:
    """Rebuild the (already validated) geometry from the flat ints the custom ops take."""
    h = (in_size[0], kernel[0], stride[0], padding[0], padding[1], dilation[0])
    w = (in_size[1], kernel[1], stride[1], padding[2], padding[3], dilation[1])
    axes = []
    for L, K, s, pb, pe, d in (h, w):
        out = sliding_out_size(L, K, s, pb, pe, d) if window == "sliding" else L
        axes.append(Axis(window, L, out, K, s, pb, pe, d))
    return Geometry(axes[0], axes[1])
