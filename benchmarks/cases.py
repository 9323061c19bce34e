"""The benchmark cases: one registry, written as data.

A :class:`Case` is one operator call on fixed shapes. ``mode`` says which
row of docs/design.md's table it is (and so the weight's 6-D shape); ``op`` is
the primitive (or composite) that runs. The suites are plain tables in
:data:`SUITE_TABLE`; nothing else in the package adds cases.

Modes (``N, C, H, W`` = input shape, ``K`` = kernel, ``G`` = ``groups``):

==========  =========  ===============================  ==========================
mode        op         weight (6-D)                     layer
==========  =========  ===============================  ==========================
dw          conn       ``(1, C, K, K, 1, 1)``           depth-wise conv
dyn-dw      conn       ``(N, C, K, K, 1, 1)``           dynamic depth-wise conv
shared      conn       ``(N, G, K, K, H, W)``           involution / inhom. dynamic DW
attn-corr   corr       ``(N, G, K, K, H, W)`` (result)  attention logits ``q . k``
attn-conn   conn       ``(N, G, K, K, H, W)``           attention ``A @ V``
attention   attention  logits/probs as above            corr, softmax over taps, conn
==========  =========  ===============================  ==========================

For ``attn-conn`` the weight is stored in the attention layout
``(N, G, H, W, K, K)`` and passed as ``.permute(0, 1, 4, 5, 2, 3)``
(``weight_layout = "attention"``), as docs/design.md section 2 describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: mode -> the op it runs
MODE_OP: dict[str, str] = {
    "dw": "conn",
    "dyn-dw": "conn",
    "shared": "conn",
    "attn-corr": "corr",
    "attn-conn": "conn",
    "attention": "attention",
}

#: head dimension of the attention cases (``groups = C // HEAD_DIM``)
HEAD_DIM = 32


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``groups`` is ``Cw`` for ``shared`` and the number of heads for the
    attention modes (ignored, i.e. ``C``, for ``dw``/``dyn-dw``).
    """

    suite: str
    mode: str
    shape: tuple[int, int, int, int]
    kernel: int
    padding: int = 0
    window: str = "sliding"
    groups: int = 0

    @property
    def op(self) -> str:
        """``"conn"``, ``"corr"`` or ``"attention"``."""
        return MODE_OP[self.mode]

    @property
    def name(self) -> str:
        """Short unique name within the suite, e.g. ``"shared 64x96x56x56 k7 g32"``."""
        N, C, H, W = self.shape
        name = f"{self.mode} {N}x{C}x{H}x{W} k{self.kernel}"
        if self.mode in ("shared", "attn-corr", "attn-conn", "attention"):
            name += f" g{self.cw}"
        if self.mode == "attention" and self.window != "neighborhood":
            name += f" {self.window}"  # e.g. Swin's windows: "... g3 block"
        return name

    @property
    def cw(self) -> int:
        """``Cw``: channel groups of the weight (``C`` for depth-wise)."""
        return self.groups or self.shape[1]

    @property
    def weight_layout(self) -> str:
        """``"contiguous"`` or ``"attention"`` (stored ``(N, G, H, W, K, K)``)."""
        return "attention" if self.mode == "attn-conn" else "contiguous"

    @property
    def out_size(self) -> tuple[int, int]:
        """``(Ho, Wo)``: stride 1 everywhere, so ``H + 2p - K + 1`` or ``H`` (windows)."""
        _, _, H, W = self.shape
        if self.window == "sliding":
            return (H + 2 * self.padding - self.kernel + 1, W + 2 * self.padding - self.kernel + 1)
        return (H, W)

    @property
    def weight_shape(self) -> tuple[int, int, int, int, int, int]:
        """The 6-D ``(Nw, Cw, Kh, Kw, Hw, Ww)`` of the weight (or of corr's result)."""
        N, C, _, _ = self.shape
        K = self.kernel
        Ho, Wo = self.out_size
        if self.mode == "dw":
            return (1, C, K, K, 1, 1)
        if self.mode == "dyn-dw":
            return (N, C, K, K, 1, 1)
        return (N, self.cw, K, K, Ho, Wo)

    @property
    def image_shape(self) -> tuple[int, int, int, int]:
        """Shape of image-like tensors: x, q, k, v and their gradients."""
        return self.shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the op's result."""
        if self.op == "corr":
            return self.weight_shape
        N, C, _, _ = self.shape
        return (N, C, *self.out_size)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the differentiable inputs, in call order."""
        return {"conn": ("x", "w"), "corr": ("a", "b"), "attention": ("q", "k", "v")}[self.op]

    @property
    def primitives(self) -> dict[str, tuple[str, str, str]]:
        """The primitive call of each training direction: ``direction -> (primitive, a, b)``.

        ``a`` and ``b`` name the operands: ``"image"`` (``N, C, H, W``), ``"out"``
        (``N, C, Ho, Wo``), ``"weight"`` (the 6-D weight in its layout). For the conn
        modes the layer is ``y = conn(x, W)``: fwd ``conn2d(x, W)``, input-grad
        ``conn2d_transpose(g, W)``, weight-grad ``corr2d(g, x)``; for ``attn-corr``
        it is ``S = corr(q, k)``: fwd ``corr2d(q, k)``, input-grad ``conn2d(k, gS)``
        (``dq``), weight-grad ``conn2d_transpose(q, gS)`` (``dk``). Empty for the
        composite ``attention`` mode.
        """
        if self.op == "corr":
            return {"fwd": ("corr2d", "out", "image"), "input-grad": ("conn2d", "image", "weight"),
                    "weight-grad": ("conn2d_transpose", "out", "weight")}
        if self.op == "conn":
            return {"fwd": ("conn2d", "image", "weight"),
                    "input-grad": ("conn2d_transpose", "out", "weight"),
                    "weight-grad": ("corr2d", "out", "image")}
        return {}

    @property
    def taps(self) -> int:
        """``Kh * Kw``."""
        return self.kernel * self.kernel

    @property
    def scale(self) -> float:
        """Softmax scale of the attention mode, ``1 / sqrt(head_dim)``."""
        return 1.0 / math.sqrt(self.shape[1] // self.cw)


# ----------------------------------------------------------------- suites
#
# Rows: (mode, (N, C, H, W), kernel, padding, window, groups).

_NBHD = "neighborhood"
_SLIDE = "sliding"

SUITE_TABLE: dict[str, list[tuple]] = {
    # DWNet-T stages at batch 64, 7x7
    "paper": [
        ("dw", (64, 96, 56, 56), 7, 3, _SLIDE, 0),
        ("dw", (64, 192, 28, 28), 7, 3, _SLIDE, 0),
        ("dw", (64, 384, 14, 14), 7, 3, _SLIDE, 0),
        ("dw", (64, 768, 7, 7), 7, 3, _SLIDE, 0),
        ("dyn-dw", (64, 96, 56, 56), 7, 3, _SLIDE, 0),
        ("dyn-dw", (64, 192, 28, 28), 7, 3, _SLIDE, 0),
        ("dyn-dw", (64, 384, 14, 14), 7, 3, _SLIDE, 0),
        ("dyn-dw", (64, 768, 7, 7), 7, 3, _SLIDE, 0),
        ("shared", (64, 96, 56, 56), 7, 3, _SLIDE, 32),
        ("shared", (64, 192, 28, 28), 7, 3, _SLIDE, 32),
        ("shared", (64, 384, 14, 14), 7, 3, _SLIDE, 32),
        ("shared", (64, 768, 7, 7), 7, 3, _SLIDE, 32),
        ("attn-corr", (64, 96, 56, 56), 7, 0, _NBHD, 96 // HEAD_DIM),
        ("attn-corr", (64, 192, 28, 28), 7, 0, _NBHD, 192 // HEAD_DIM),
        ("attn-corr", (64, 384, 14, 14), 7, 0, _NBHD, 384 // HEAD_DIM),
        ("attn-corr", (64, 768, 7, 7), 7, 0, _NBHD, 768 // HEAD_DIM),
        ("attn-conn", (64, 96, 56, 56), 7, 0, _NBHD, 96 // HEAD_DIM),
        ("attn-conn", (64, 192, 28, 28), 7, 0, _NBHD, 192 // HEAD_DIM),
        ("attn-conn", (64, 384, 14, 14), 7, 0, _NBHD, 384 // HEAD_DIM),
        ("attn-conn", (64, 768, 7, 7), 7, 0, _NBHD, 768 // HEAD_DIM),
    ],
    "large-kernel": [
        ("dw", (64, 384, 32, 32), 13, 6, _SLIDE, 0),
        ("dw", (64, 384, 32, 32), 31, 15, _SLIDE, 0),
    ],
    # whole attention, 3 heads of 32, against FlexAttention: NAT / DWNet-T stage 1
    # (neighborhood) and Swin-T stage 1 (7x7 blocks)
    "attention": [
        ("attention", (64, 96, 56, 56), 7, 0, _NBHD, 3),
        ("attention", (64, 96, 56, 56), 7, 0, "block", 3),
    ],
    # small shapes for a CPU run of about a minute
    "cpu": [
        ("dw", (8, 64, 28, 28), 7, 3, _SLIDE, 0),
        ("dyn-dw", (8, 64, 28, 28), 7, 3, _SLIDE, 0),
        ("shared", (8, 64, 28, 28), 7, 3, _SLIDE, 8),
        ("attn-corr", (4, 64, 28, 28), 7, 0, _NBHD, 64 // HEAD_DIM),
        ("attn-conn", (4, 64, 28, 28), 7, 0, _NBHD, 64 // HEAD_DIM),
        ("attention", (4, 64, 28, 28), 7, 0, _NBHD, 64 // HEAD_DIM),
        ("dw", (8, 64, 32, 32), 13, 6, _SLIDE, 0),
    ],
    # the CPU backend's targets (issue 18): DWNet-T stage 1 and 3 depth-wise 7x7, dynamic
    # depth-wise, involution with 32 groups of 16 channels, neighborhood attention 7x7
    "cpu-targets": [
        ("dw", (8, 96, 56, 56), 7, 3, _SLIDE, 0),
        ("dw", (8, 384, 14, 14), 7, 3, _SLIDE, 0),
        ("dyn-dw", (8, 96, 56, 56), 7, 3, _SLIDE, 0),
        ("dyn-dw", (8, 384, 14, 14), 7, 3, _SLIDE, 0),
        ("shared", (8, 512, 14, 14), 7, 3, _SLIDE, 32),
        ("attention", (8, 96, 28, 28), 7, 0, _NBHD, 3),
    ],
}


def _build(table: dict[str, list[tuple]]) -> dict[str, tuple[Case, ...]]:
    return {
        suite: tuple(Case(suite, m, tuple(s), k, p, w, g) for m, s, k, p, w, g in rows)
        for suite, rows in table.items()
    }


#: suite name -> its cases
SUITES: dict[str, tuple[Case, ...]] = _build(SUITE_TABLE)


def cases(suites: list[str], name_filter: str = "") -> list[Case]:
    """The cases of ``suites`` (in table order) whose name contains ``name_filter``."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; known: {sorted(SUITES)}")
    return [c for s in suites for c in SUITES[s] if name_filter in c.name]
