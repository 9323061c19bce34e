"""What a backend is asked to compute: one primitive on given shapes.

A :class:`Problem` is built from validated arguments just before dispatch;
backends look at it to decide whether they support a configuration (and
say why not) without touching tensor data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import Geometry

PRIMITIVES = ("conn2d", "conn2d_transpose", "corr2d")


@dataclass(frozen=True)
class Problem:
    """One call of a primitive.

    ``primitive`` is one of :data:`PRIMITIVES`; ``batch``/``channels`` are
    ``N``/``C``; ``weight_shape`` the 6-D ``(Nw, Cw, Kh, Kw, Hw, Ww)``;
    ``channels_last`` whether the image-shaped input is channels_last.
    """

    primitive: str
    geometry: Geometry
    batch: int
    channels: int
    weight_shape: tuple[int, int, int, int, int, int]
    dtype: torch.dtype
    device: torch.device
    channels_last: bool = False
    has_bias: bool = False

    @property
    def groups(self) -> int:
        """``Cw``: the number of channel groups sharing a weight."""
        return self.weight_shape[1]

    @property
    def mode(self) -> str:
        """A short name of the weight sharing, e.g. ``"static-spatial"``."""
        Nw, Cw, _, _, Hw, Ww = self.weight_shape
        dyn = "dynamic" if Nw == self.batch and self.batch > 1 else "static"
        if Hw == 1 and Ww == 1:
            share = "spatial"
        elif Cw == self.channels:
            share = "none"
        else:
            share = "channel"
        return f"{dyn}-{share}"
