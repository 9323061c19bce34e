"""The blocks of the DWNet family and of its local-attention counterparts.

DWNet (Han et al., ICLR 2022, official code) replaces Swin's attention
block by a *spatial block*; the FFN is Swin's MLP, but pre-normalised by
BatchNorm instead of LayerNorm (the official code's choice, kept here)::

    DWBlock:        x = x + drop_path(spatial(x))
                    x = x + drop_path(mlp(BN(x)))
    spatial(x) =    BN(conv1x1(ReLU(BN(layer(ReLU(BN(conv1x1(x))))))))   (1x1 convs without bias)

where ``layer`` is the 7x7 locally-connected layer (``layer_kind``):

==================  =============================================================  =====================
``layer_kind``      ``LocalConn2d``                                                 model
==================  =============================================================  =====================
``"static"``        ``LocalConn2d(C, 7)`` (depth-wise conv, with bias)              DWNet
``"dynamic"``       ``LocalConn2d(C, 7, dynamic=True)`` (global-pool generator,     dynamic DWNet
                    reduction 4, with bias)
``"inhomogeneous"`` ``LocalConn2d(C, 7, share="channel", groups=32, dynamic=True,   inhomogeneous dynamic
                    bias=False)`` (per-position generator, reduction 4)             DWNet
==================  =============================================================  =====================

With ``layers="torch"`` the layer is the original code's formulation instead
(:mod:`localconn.models.baselines`), with identical parameters.

The local-attention counterpart is Swin's block on the same skeleton::

    AttentionBlock: x = x + drop_path(attention(LN(x)))
                    x = x + drop_path(mlp(LN(x)))

with :class:`~localconn.LocalAttention2d`: Swin's shifted block windows
(window 7; odd blocks shifted by 3; a stage whose resolution is not larger
than the window uses one window without shift, as Swin does) or
neighborhood attention (7x7, the kernel capped at the resolution). The qkv
and output projections (1x1 convolutions) are initialised as Swin's
``nn.Linear`` layers (trunc-normal, std 0.02, zero bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torch import Tensor, nn

from ..attention import LocalAttention2d
from ..layer import LocalConn2d
from . import baselines
from .layers import DropPath, LayerNorm2d, Mlp
from .skeleton import BlockFactory, BlockSpec

LAYER_KINDS = ("static", "dynamic", "inhomogeneous")
LAYERS = ("localconn", "torch")


def check_layer_args(kind: str, layers: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is in :data:`LAYER_KINDS` and ``layers`` in :data:`LAYERS`.

    Example::

        >>> check_layer_args("static", "torch")
    """
    if kind not in LAYER_KINDS:
        raise ValueError(f"layer kind must be one of {LAYER_KINDS}, got {kind!r}")
    if layers not in LAYERS:
        raise ValueError(f"layers must be one of {LAYERS}, got {layers!r}")


def spatial_layer(
    kind: str,
    dim: int,
    kernel_size: int = 7,
    *,
    groups: int = 32,
    reduction: int = 4,
    layers: str = "localconn",
    backend: Optional[str] = None,
) -> nn.Module:
    """The ``K x K`` locally-connected layer of a DWNet spatial block (table above).

    ``layers="localconn"`` gives a :class:`~localconn.LocalConn2d` (on
    ``backend``), ``layers="torch"`` the original formulation with the same
    parameters (:mod:`localconn.models.baselines`).

    Example::

        >>> type(spatial_layer("dynamic", 64)).__name__
        'LocalConn2d'
        >>> type(spatial_layer("dynamic", 64, layers="torch")).__name__
        'BatchFoldDynamicDWConv'
    """
    check_layer_args(kind, layers)
    if layers == "torch":
        if kind == "static":
            return baselines.depthwise_conv(dim, kernel_size)
        if kind == "dynamic":
            return baselines.BatchFoldDynamicDWConv(dim, kernel_size, reduction)
        return baselines.UnfoldInhomogeneousDWConv(dim, kernel_size, groups, reduction)
    if kind == "static":
        return LocalConn2d(dim, kernel_size, backend=backend)
    if kind == "dynamic":
        return LocalConn2d(dim, kernel_size, dynamic=True, reduction=reduction, backend=backend)
    return LocalConn2d(
        dim,
        kernel_size,
        bias=False,
        share="channel",
        groups=groups,
        dynamic=True,
        reduction=reduction,
        backend=backend,
    )


class DWSpatial(nn.Module):
    """``BN(conv1x1(ReLU(BN(layer(ReLU(BN(conv1x1(x))))))))``: DWNet's spatial mixing.

    Names as the official ``DWBlock``: ``conv0``, ``bn0``, ``conv``, ``bn``,
    ``conv2``, ``bn2``.

    Example::

        >>> DWSpatial(16, LocalConn2d(16, 7))(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, dim: int, layer: nn.Module) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(dim)
        self.conv = layer
        self.bn = nn.BatchNorm2d(dim)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn0(self.conv0(x)))
        x = self.relu(self.bn(self.conv(x)))
        return self.bn2(self.conv2(x))


class DWBlock(nn.Module):
    """DWNet's block: spatial mixing, then the BN-normalised MLP, both residual.

    ``x + drop_path(attn2conv(x))``, then ``x + drop_path(mlp(bn(x)))``.

    Example::

        >>> spec = BlockSpec(16, (8, 8), 0, 0, 0.0, 4.0)
        >>> DWBlock(spec, LocalConn2d(16, 7))(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, spec: BlockSpec, layer: nn.Module) -> None:
        super().__init__()
        self.attn2conv = DWSpatial(spec.dim, layer)
        self.drop_path = DropPath(spec.drop_path)
        self.bn = nn.BatchNorm2d(spec.dim)
        self.mlp = Mlp(spec.dim, spec.mlp_ratio, spec.drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn2conv(x))
        return x + self.drop_path(self.mlp(self.bn(x)))


class AttentionBlock(nn.Module):
    """Swin's block on NCHW maps: ``x + drop_path(attn(LN(x)))``, ``x + drop_path(mlp(LN(x)))``.

    Example::

        >>> spec = BlockSpec(16, (8, 8), 0, 1, 0.0, 4.0)
        >>> attn = LocalAttention2d(16, 2, 4, window="block", shift=2)
        >>> AttentionBlock(spec, attn)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, spec: BlockSpec, attn: LocalAttention2d) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(spec.dim)
        self.attn = attn
        for proj in (attn.qkv, attn.proj):  # Swin's nn.Linear initialisation
            nn.init.trunc_normal_(proj.weight, std=0.02)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        self.drop_path = DropPath(spec.drop_path)
        self.norm2 = LayerNorm2d(spec.dim)
        self.mlp = Mlp(spec.dim, spec.mlp_ratio, spec.drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def dwnet_blocks(
    kind: str,
    kernel_size: int = 7,
    *,
    groups: int = 32,
    reduction: int = 4,
    layers: str = "localconn",
    backend: Optional[str] = None,
) -> BlockFactory:
    """Block factory of the DWNet family: :class:`DWBlock` around :func:`spatial_layer`.

    Example::

        >>> make = dwnet_blocks("inhomogeneous", groups=4)
        >>> make(BlockSpec(16, (8, 8), 0, 0, 0.0, 4.0)).attn2conv.conv.groups
        4
    """
    check_layer_args(kind, layers)
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1 \
            or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int (a DWNet block keeps the map's "
                         f"size with padding (K - 1) / 2), got {kernel_size!r}")

    def make(spec: BlockSpec) -> nn.Module:
        layer = spatial_layer(
            kind,
            spec.dim,
            kernel_size,
            groups=groups,
            reduction=reduction,
            layers=layers,
            backend=backend,
        )
        return DWBlock(spec, layer)

    return make


def _per_stage(num_heads: Sequence[int], spec: BlockSpec) -> int:
    if spec.stage >= len(num_heads):
        raise ValueError(
            f"num_heads needs one entry per stage, got {tuple(num_heads)} for stage {spec.stage}"
        )
    return int(num_heads[spec.stage])


def swin_blocks(
    num_heads: Sequence[int], window_size: int = 7, *, backend: Optional[str] = None
) -> BlockFactory:
    """Block factory of the Swin counterpart: shifted block windows (``window="block"``).

    Per stage of resolution ``R``: window ``min(window_size, R)``; blocks
    with an odd index are shifted by ``window // 2`` when ``R >
    window_size`` (Swin's rule). A stage that the window does not divide is
    zero-padded to whole windows and cropped back (``pad_to_blocks``, as timm's
    Swin does; e.g. ``img_size=256`` with window 7).

    Example::

        >>> make = swin_blocks((2, 4), window_size=4)
        >>> make(BlockSpec(16, (8, 8), 0, 1, 0.0, 4.0)).attn.shift
        (2, 2)
    """

    def make(spec: BlockSpec) -> nn.Module:
        res = min(spec.resolution)
        window = min(window_size, res)
        shift = window // 2 if spec.index % 2 and res > window_size else 0
        heads = _per_stage(num_heads, spec)
        attn = LocalAttention2d(
            spec.dim, heads, window, window="block", shift=shift, backend=backend,
            pad_to_blocks=any(r % window for r in spec.resolution),
        )
        return AttentionBlock(spec, attn)

    return make


def nat_blocks(
    num_heads: Sequence[int], kernel_size: int = 7, *, backend: Optional[str] = None
) -> BlockFactory:
    """Block factory of the neighborhood-attention counterpart (``window="neighborhood"``).

    The kernel is ``min(kernel_size, R)`` at a stage of resolution ``R``
    (the window must fit in the image).

    Example::

        >>> make = nat_blocks((2, 4))
        >>> make(BlockSpec(16, (8, 8), 0, 0, 0.0, 4.0)).attn.kernel_size
        (7, 7)
    """

    def make(spec: BlockSpec) -> nn.Module:
        kernel = min(kernel_size, *spec.resolution)
        heads = _per_stage(num_heads, spec)
        attn = LocalAttention2d(spec.dim, heads, kernel, window="neighborhood", backend=backend)
        return AttentionBlock(spec, attn)

    return make
