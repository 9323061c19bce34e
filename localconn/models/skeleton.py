"""The Swin macro design that every model of :mod:`localconn.models` shares.

::

    image (N, 3, H, W)
      -> patch embedding: Conv2d(3, C, 4, stride 4) -> LayerNorm          (N, C, H/4, W/4)
      -> stage 1: depths[0] blocks of width C
      -> patch merging: 2x2 neighbours concatenated -> LayerNorm(4C) -> Linear(4C, 2C)
      -> stage 2: depths[1] blocks of width 2C, merging, stage 3 (4C), merging, stage 4 (8C)
      -> LayerNorm -> global average pool -> Linear(8C, num_classes)

(Liu et al., Swin Transformer, 2021; Han et al., ICLR 2022, keep it for
DWNet.) The blocks come from a *block factory*: a function of a
:class:`BlockSpec` (width, resolution, stage, index in the stage, stochastic
depth rate, MLP ratio) returning a module ``(N, C, H, W) -> (N, C, H, W)``.
Stochastic depth grows linearly from 0 to ``drop_path_rate`` over all
blocks. ``nn.Linear`` layers are initialised trunc-normal (std 0.02) and
LayerNorms to (1, 0), as in the official code. Module names follow the
official Swin / DWNet code (``patch_embed``, ``layers.i.blocks.j``,
``layers.i.downsample``, ``norm``, ``head``).

Feature maps stay ``(N, C, H, W)`` throughout (``channels_last`` if the
input is); see :mod:`localconn.models.layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from ..scripting import NotScriptable
from .layers import LayerNorm2d, from_tokens, init_linear_and_norm, to_tokens


@dataclass(frozen=True)
class BlockSpec:
    """What a block factory is told about the block it builds."""

    dim: int
    resolution: tuple[int, int]
    stage: int
    index: int
    drop_path: float
    mlp_ratio: float
    drop: float = 0.0


BlockFactory = Callable[[BlockSpec], nn.Module]


class PatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` patches -> ``C`` channels, then LayerNorm.

    Example::

        >>> PatchEmbed(3, 96, 4)(torch.randn(1, 3, 224, 224)).shape
        torch.Size([1, 96, 56, 56])
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.norm = LayerNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x))


class PatchMerging(nn.Module):
    """Swin's downsampling: ``(N, C, H, W) -> (N, 2C, H/2, W/2)``.

    The four pixels of each 2x2 cell are concatenated in Swin's order
    ``(0, 0), (1, 0), (0, 1), (1, 1)`` (row, column), normalised by
    ``LayerNorm(4C)`` and projected by ``Linear(4C, 2C, bias=False)``.

    Example::

        >>> PatchMerging(96)(torch.randn(1, 96, 56, 56)).shape
        torch.Size([1, 192, 28, 28])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        t = to_tokens(x)  # (N, H, W, C)
        t = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2], t[:, 0::2, 1::2], t[:, 1::2, 1::2]], -1)
        return from_tokens(self.reduction(self.norm(t)))


class Stage(nn.Module):
    """``blocks`` at one width, then (except in the last stage) :class:`PatchMerging`."""

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.grad_checkpointing = False

    def forward_blocks(self, x: Tensor) -> Tensor:
        """The blocks (each recomputed in the backward pass when ``grad_checkpointing``):
        the stage's feature map before the merging."""
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_blocks(x)
        return x if self.downsample is None else self.downsample(x)


def drop_path_rates(rate: float, count: int) -> list[float]:
    """``count`` stochastic-depth rates from 0 to ``rate``, linearly (Swin's rule).

    Example::

        >>> drop_path_rates(0.2, 3)
        [0.0, 0.1, 0.2]
    """
    if count <= 1:
        return [0.0] * count
    return [rate * i / (count - 1) for i in range(count)]


class LocalNet(NotScriptable, nn.Module):
    """The Swin-style hierarchical classifier with pluggable blocks (module docstring).

    Args:
        block: the block factory (see :mod:`localconn.models.blocks`).
        img_size: input resolution; must be divisible by
            ``patch_size * 2 ** (len(depths) - 1)``.
        patch_size: side of the patch embedding (4).
        in_chans: image channels.
        num_classes: classes of the head; 0 for no head (features only).
        embed_dim: width ``C`` of the first stage (doubled at every merging).
        depths: blocks per stage.
        mlp_ratio: hidden width of the FFN over ``C``.
        drop_rate: dropout in the FFNs.
        drop_path_rate: stochastic depth of the last block.

    Example::

        >>> from localconn.models.blocks import dwnet_blocks
        >>> net = LocalNet(dwnet_blocks("static"), img_size=64, embed_dim=16,
        ...                depths=(1, 1, 1, 1), num_classes=10)
        >>> net(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        block: BlockFactory,
        *,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        if not depths or min(depths) < 1:
            raise ValueError(f"depths must be a non-empty sequence of positive ints, got {depths}")
        factor = patch_size * 2 ** (len(depths) - 1)
        if img_size % factor:
            raise ValueError(
                f"img_size must be divisible by patch_size * 2 ** (len(depths) - 1) = {factor}, "
                f"got {img_size}"
            )
        self.img_size, self.in_chans, self.depths = img_size, in_chans, depths
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size)
        rates = drop_path_rates(drop_path_rate, sum(depths))
        res, dim, layers = img_size // patch_size, embed_dim, []
        for stage, depth in enumerate(depths):
            blocks = [
                block(BlockSpec(dim, (res, res), stage, i, rates.pop(0), mlp_ratio, drop_rate))
                for i in range(depth)
            ]
            last = stage == len(depths) - 1
            layers.append(Stage(blocks, None if last else PatchMerging(dim)))
            if not last:
                res, dim = res // 2, dim * 2
        self.layers = nn.ModuleList(layers)
        self.norm = LayerNorm2d(self.num_features)
        self.num_classes = num_classes
        self.head: nn.Module = self._make_head(num_classes)
        self.apply(init_linear_and_norm)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, in_chans, H, W) -> (N, num_features, H/32, W/32)``, after the final norm."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool and (unless ``pre_logits``) the classifier."""
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` (pooled features if ``num_classes == 0``)."""
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------ timm's model interface

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """Each stage's feature map before its merging: channels, reduction from the input,
        and the module whose output it is (the stage's last block)."""
        dim = self.patch_embed.proj.out_channels
        stride = self.patch_embed.proj.stride[0]
        return [{"num_chs": dim * 2 ** i, "reduction": stride * 2 ** i,
                 "module": f"layers.{i}.blocks.{len(layer.blocks) - 1}"}
                for i, layer in enumerate(self.layers)]

    def forward_intermediates(
        self,
        x: Tensor,
        indices: Optional[Union[int, Sequence[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[list[Tensor], tuple[Tensor, list[Tensor]]]:
        """The stages' feature maps before their merging (timm's ``forward_intermediates``).

        Args:
            indices: stages to return: ``n`` for the last ``n``, or a list of stage
                indices (negative from the end); ``None``: all.
            norm: apply the final norm to the last stage's map.
            stop_early: stop after the last stage asked for (``intermediates_only``).
            output_fmt: ``"NCHW"`` or ``"NHWC"``.
            intermediates_only: return only the list.

        Returns ``(forward_features(x), maps)`` or ``maps``. Example::

            >>> from localconn.models.blocks import dwnet_blocks
            >>> net = LocalNet(dwnet_blocks("static"), img_size=64, embed_dim=16,
            ...                depths=(1, 1, 1, 1), num_classes=10)
            >>> [tuple(f.shape) for f in net.forward_intermediates(torch.randn(1, 3, 64, 64),
            ...                                                   intermediates_only=True)]
            [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
        """
        take = self._take_indices(indices)
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        last = len(self.layers) - 1
        stages = self.layers[: max(take) + 1] if stop_early and intermediates_only else self.layers
        maps = []
        x = self.patch_embed(x)
        for i, layer in enumerate(stages):
            x = layer.forward_blocks(x)
            if i in take:
                f = self.norm(x) if norm and i == last else x
                maps.append(f.permute(0, 2, 3, 1) if output_fmt == "NHWC" else f)
            if layer.downsample is not None:
                x = layer.downsample(x)
        if intermediates_only:
            return maps
        return self.norm(x), maps

    def _take_indices(self, indices: Optional[Union[int, Sequence[int]]]) -> list[int]:
        n = len(self.layers)
        if indices is None:
            return list(range(n))
        if isinstance(indices, int):
            if not 1 <= indices <= n:
                raise ValueError(f"indices must be 1..{n} (the last n stages), got {indices}")
            return list(range(n - indices, n))
        take = [i + n if i < 0 else i for i in indices]
        if not take or min(take) < 0 or max(take) >= n:
            raise ValueError(f"indices must be stage indices in -{n}..{n - 1}, got {list(indices)}")
        return sorted(set(take))

    def prune_intermediate_layers(self, indices: Optional[Union[int, Sequence[int]]] = None,
                                  prune_norm: bool = False, prune_head: bool = True) -> list[int]:
        """Drop the stages after the last of ``indices`` (timm's feature extraction), the
        final norm if ``prune_norm``, the head if ``prune_head``; the kept indices."""
        take = self._take_indices(indices)
        self.layers = self.layers[: max(take) + 1]
        if prune_norm:
            self.norm = nn.Identity()  # type: ignore[assignment]
        if prune_head:
            self.reset_classifier(0)
        return take

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (activation checkpointing)."""
        for layer in self.layers:
            layer.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for layer-wise learning-rate decay (timm's ``group_matcher``):
        the patch embedding, then stage by stage (``coarse``) or block by block with each
        stage's merging after its blocks, the final norm last."""
        if coarse:
            return {"stem": r"^patch_embed",
                    "blocks": [(r"^layers\.(\d+)", None), (r"^norm", (99999,))]}
        return {"stem": r"^patch_embed",
                "blocks": [(r"^layers\.(\d+)\.blocks\.(\d+)", None),
                           (r"^layers\.(\d+)\.downsample", (99998,)),
                           (r"^norm", (99999,))]}

    def no_weight_decay(self) -> set[str]:
        """Parameters that timm's optimizers keep out of weight decay besides the 1-D ones
        (norms, biases): the relative position bias tables, as Swin's recipe does."""
        return {n for n, _ in self.named_parameters() if n.endswith("relative_position_bias_table")}

    def no_weight_decay_keywords(self) -> set[str]:
        """The same by keyword (older timm and Swin code)."""
        return {"relative_position_bias_table"}

    def get_classifier(self) -> nn.Module:
        """The head (timm's model interface)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head for ``num_classes`` (0: none)."""
        self.num_classes = num_classes
        self.head = self._make_head(num_classes)
        self.head.apply(init_linear_and_norm)
