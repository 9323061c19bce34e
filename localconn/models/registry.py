"""The model names, their configurations and published sizes; :func:`create` and :func:`names`.

==========================  ==================================================  ===============
name                        model                                               published
==========================  ==================================================  ===============
``dwnet_tiny``              DWNet-T: C=96, depths 2-2-6-2, static 7x7 DW conv    24M, 3.8G
``dwnet_base``              DWNet-B: C=128, depths 2-2-18-2                      74M, 12.9G
``dynamic_dwnet_tiny``      dynamic DWNet-T (global-pool generator, r=4)         51M, 3.8G
``dynamic_dwnet_base``      dynamic DWNet-B                                      162M, 13.0G
``idynamic_dwnet_tiny``     inhomogeneous dynamic DWNet-T (32 groups, per        -
                            position generator, r=4)
``idynamic_dwnet_base``     inhomogeneous dynamic DWNet-B                        -
``swin_tiny``               Swin-T on LocalAttention2d (block windows, shifts)   28M, 4.5G
``swin_base``               Swin-B on LocalAttention2d                           88M, 15.4G
``nat_tiny``                Swin-T skeleton with 7x7 neighborhood attention      -
==========================  ==================================================  ===============

"published" is parameters and multiply-accumulates ("FLOPs") at 224x224 as
reported by Han et al. (ICLR 2022; official DWNet repository) and Liu et
al. (Swin Transformer, 2021). ``nat_tiny`` is *not* NAT-Tiny of Hassani et
al. (a different skeleton): it is Swin-T with the block windows replaced by
neighborhood windows, the counterpart the paper's comparison needs.
Stochastic depth defaults to the official configurations (0.2 tiny, 0.5 base).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .blocks import dwnet_blocks, nat_blocks, swin_blocks
from .skeleton import LocalNet


def build_dwnet(
    *,
    layer_kind: str,
    kernel_size: int = 7,
    groups: int = 32,
    reduction: int = 4,
    layers: str = "localconn",
    backend: Optional[str] = None,
    drop_path_rate: float = 0.2,
    **skeleton: Any,
) -> LocalNet:
    """A DWNet-family model (see :mod:`localconn.models.blocks` for ``layer_kind``).

    ``groups`` (inhomogeneous only) must divide every stage's width;
    ``layers="torch"`` builds the original code's layers instead of
    ``LocalConn2d`` (same parameters). Other keyword arguments (``img_size``,
    ``in_chans``, ``num_classes``, ``embed_dim``, ``depths``, ``mlp_ratio``,
    ``drop_rate``) go to :class:`~localconn.models.skeleton.LocalNet`.

    Example::

        >>> build_dwnet(layer_kind="static", img_size=64, embed_dim=16, depths=(1, 1, 1, 1))
        LocalNet(...)
    """
    block = dwnet_blocks(
        layer_kind, kernel_size, groups=groups, reduction=reduction, layers=layers, backend=backend
    )
    return LocalNet(block, drop_path_rate=drop_path_rate, **skeleton)


def build_attention_net(
    *,
    window: str,
    depths: Sequence[int] = (2, 2, 6, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    window_size: int = 7,
    layers: str = "localconn",
    backend: Optional[str] = None,
    drop_path_rate: float = 0.2,
    **skeleton: Any,
) -> LocalNet:
    """A local-attention model: ``window="block"`` (Swin) or ``"neighborhood"``.

    ``num_heads`` has one entry per stage, each dividing that stage's width.
    Other keyword arguments go to :class:`~localconn.models.skeleton.LocalNet`.

    Example::

        >>> build_attention_net(window="block", img_size=64, embed_dim=16, depths=(1, 2, 1, 1),
        ...                     num_heads=(1, 2, 2, 4), window_size=4)
        LocalNet(...)
    """
    if layers != "localconn":
        raise ValueError(
            f"the local-attention models exist on localconn only (layers='localconn'), "
            f"got layers={layers!r}"
        )
    if len(num_heads) != len(depths):
        raise ValueError(
            f"num_heads needs one entry per stage ({len(depths)}), got {tuple(num_heads)}"
        )
    if window == "block":
        block = swin_blocks(num_heads, window_size, backend=backend)
    elif window == "neighborhood":
        block = nat_blocks(num_heads, window_size, backend=backend)
    else:
        raise ValueError(f"window must be 'block' or 'neighborhood', got {window!r}")
    return LocalNet(block, depths=depths, drop_path_rate=drop_path_rate, **skeleton)


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: builder, its default arguments, and the published size.

    ``published`` is ``(params, MACs)`` at 224x224 from the paper, or ``None``.
    """

    name: str
    description: str
    builder: Callable[..., LocalNet]
    defaults: dict[str, Any] = field(default_factory=dict)
    published: Optional[tuple[float, float]] = None


_TINY = {"embed_dim": 96, "depths": (2, 2, 6, 2), "drop_path_rate": 0.2}
_BASE = {"embed_dim": 128, "depths": (2, 2, 18, 2), "drop_path_rate": 0.5}
_SWIN_T = {**_TINY, "num_heads": (3, 6, 12, 24)}
_SWIN_B = {**_BASE, "num_heads": (4, 8, 16, 32)}

_MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("dwnet_tiny", "DWNet-T (static 7x7 depth-wise)", build_dwnet,
                  {**_TINY, "layer_kind": "static"}, (24e6, 3.8e9)),
        ModelInfo("dwnet_base", "DWNet-B (static 7x7 depth-wise)", build_dwnet,
                  {**_BASE, "layer_kind": "static"}, (74e6, 12.9e9)),
        ModelInfo("dynamic_dwnet_tiny", "dynamic DWNet-T (global-pool generator)", build_dwnet,
                  {**_TINY, "layer_kind": "dynamic"}, (51e6, 3.8e9)),
        ModelInfo("dynamic_dwnet_base", "dynamic DWNet-B (global-pool generator)", build_dwnet,
                  {**_BASE, "layer_kind": "dynamic"}, (162e6, 13.0e9)),
        ModelInfo("idynamic_dwnet_tiny", "inhomogeneous dynamic DWNet-T (32 groups)", build_dwnet,
                  {**_TINY, "layer_kind": "inhomogeneous"}),
        ModelInfo("idynamic_dwnet_base", "inhomogeneous dynamic DWNet-B (32 groups)", build_dwnet,
                  {**_BASE, "layer_kind": "inhomogeneous"}),
        ModelInfo("swin_tiny", "Swin-T on LocalAttention2d (shifted block windows)",
                  build_attention_net, {**_SWIN_T, "window": "block"}, (28e6, 4.5e9)),
        ModelInfo("swin_base", "Swin-B on LocalAttention2d (shifted block windows)",
                  build_attention_net, {**_SWIN_B, "window": "block"}, (88e6, 15.4e9)),
        ModelInfo("nat_tiny", "Swin-T skeleton with 7x7 neighborhood attention",
                  build_attention_net, {**_SWIN_T, "window": "neighborhood"}),
    )
}  # fmt: skip


def names() -> list[str]:
    """The names :func:`create` accepts, in table order.

    Example::

        >>> names()[:2]
        ['dwnet_tiny', 'dwnet_base']
    """
    return list(_MODELS)


def info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name`` (``ValueError`` listing the names if unknown).

    Example::

        >>> info("swin_tiny").published
        (28000000.0, 4500000000.0)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), got {type(name).__name__} {name!r}")
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(_MODELS)}")
    return _MODELS[name]


def create(name: str, **kwargs: Any) -> LocalNet:
    """Build model ``name`` with its defaults overridden by ``kwargs``.

    Common keyword arguments: ``img_size``, ``in_chans``, ``num_classes``,
    ``embed_dim``, ``depths``, ``mlp_ratio``, ``drop_rate``,
    ``drop_path_rate``, ``backend`` (localconn's backend for every layer).
    DWNet family: ``kernel_size`` (7), ``groups`` (32, inhomogeneous only),
    ``reduction`` (4), ``layers`` (``"localconn"``, or ``"torch"`` for the
    original code's layers). Attention models: ``num_heads`` (per stage),
    ``window_size`` (7). Build on the meta device (``with
    torch.device("meta"):``) to count a large model without allocating it.

    Example::

        >>> net = create("dynamic_dwnet_tiny", img_size=64, embed_dim=16, depths=(1, 1, 1, 1),
        ...              num_classes=10)
        >>> net(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 10])
    """
    m = info(name)
    return m.builder(**{**m.defaults, **kwargs})
