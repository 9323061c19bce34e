"""Checkpoints of other projects' modules as localconn's: one entry point per source.

Each function maps a peer module's ``state_dict`` to the ``state_dict`` of the localconn
module that computes the same function, so ``load_state_dict`` of the result gives equal
outputs (tested against a faithful re-creation of the peer's module in
``tests/test_convert.py``).

* :func:`natten` -- NATTEN's ``NeighborhoodAttention2D`` (NAT / DiNAT) into
  :class:`~localconn.LocalAttention2d` (``window="neighborhood"``).
* :func:`swin` -- a Swin Transformer (timm's ``swin_*_patch4_window7_224`` layout, or
  the official Microsoft code's) into ``localconn.models.create("swin_tiny")`` (and the
  other Swin sizes: ``swin_base``, or ``create`` with the checkpoint's widths).
* :func:`dwnet` -- the DWNet, dynamic DWNet and inhomogeneous dynamic DWNet of the
  paper's code (Atten4Vis/DemystifyLocalViT) into ``localconn.models.create(
  "dwnet_tiny" | "dynamic_dwnet_tiny" | "idynamic_dwnet_tiny")`` (and the ``_base``
  sizes).
* :func:`involution` -- the ``involution`` layer of RedNet (d-li14/involution, mmcv
  ``ConvModule`` names) into :class:`~localconn.LocalConn2d` (``share="channel"``,
  ``dynamic=True``; stride 2 with ``generator_input="avgpool"``).

Example::

    >>> from localconn import LocalAttention2d
    >>> natten_sd = {"qkv.weight": torch.randn(96, 32), "qkv.bias": torch.randn(96),
    ...              "rpb": torch.randn(4, 13, 13),
    ...              "proj.weight": torch.randn(32, 32), "proj.bias": torch.randn(32)}
    >>> m = LocalAttention2d(32, 4, 7)
    >>> m.load_state_dict(natten(natten_sd))
    <All keys matched successfully>
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor


def _conv1x1(weight: Tensor) -> Tensor:
    """A ``Linear``'s ``(out, in)`` weight as a 1x1 ``Conv2d``'s ``(out, in, 1, 1)``."""
    return weight.reshape(*weight.shape, 1, 1)


def natten(state_dict: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """NATTEN's ``NeighborhoodAttention2D`` -> :class:`~localconn.LocalAttention2d`.

    NATTEN's module (NAT, DiNAT) works on heads-last ``(B, H, W, C)`` tokens with
    ``Linear`` projections; ``LocalAttention2d`` on ``(B, C, H, W)`` images with 1x1
    convolutions, so ``m(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)`` equals NATTEN's
    ``natten_module(x)`` after loading. Build the module with NATTEN's arguments:
    ``LocalAttention2d(dim, num_heads, kernel_size, dilation=dilation,
    rel_pos_bias=<the checkpoint has rpb>, qkv_bias=..., qk_scale=...)`` (the window is
    ``"neighborhood"``, the default). Both split ``qkv``'s channels as
    ``(3, heads, head_dim)`` and scale the query by ``head_dim ** -0.5`` unless told
    otherwise.

    Key by key: ``qkv.weight`` / ``proj.weight`` ``(out, in)`` -> ``(out, in, 1, 1)``;
    biases as they are; ``rpb`` ``(heads, 2Kh - 1, 2Kw - 1)`` (NATTEN indexes it by the
    key's offset from the query, as localconn does) -> ``relative_position_bias_table``
    ``((2Kh - 1) (2Kw - 1), heads)``, its transpose. ``prefix`` selects one module of a
    whole model's state dict (e.g. ``"levels.0.blocks.1.attn."``).

    Example::

        >>> sd = natten({"qkv.weight": torch.randn(24, 8), "proj.weight": torch.randn(8, 8),
        ...              "proj.bias": torch.randn(8)})
        >>> sorted(sd), tuple(sd["qkv.weight"].shape)
        (['proj.bias', 'proj.weight', 'qkv.weight'], (24, 8, 1, 1))
    """
    known = {"qkv.weight", "qkv.bias", "rpb", "proj.weight", "proj.bias"}
    mine = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    unknown = sorted(set(mine) - known)
    if unknown:
        raise ValueError(f"state_dict: keys that NATTEN's NeighborhoodAttention2D does not "
                         f"have under prefix {prefix!r}: {unknown}")
    missing = sorted({"qkv.weight", "proj.weight", "proj.bias"} - set(mine))
    if missing:
        raise ValueError(f"state_dict: NeighborhoodAttention2D's {missing} missing under "
                         f"prefix {prefix!r}")
    out = {}
    for name in ("qkv", "proj"):
        weight = mine[f"{name}.weight"]
        if weight.dim() != 2:
            raise ValueError(f"state_dict: {prefix}{name}.weight must be a Linear's (out, in) "
                             f"weight, got shape {tuple(weight.shape)}")
        out[f"{name}.weight"] = _conv1x1(weight)
        if f"{name}.bias" in mine:
            out[f"{name}.bias"] = mine[f"{name}.bias"]
    if "rpb" in mine:
        rpb = mine["rpb"]
        if rpb.dim() != 3:
            raise ValueError(f"state_dict: {prefix}rpb must be (heads, 2Kh - 1, 2Kw - 1), got "
                             f"shape {tuple(rpb.shape)}")
        out["relative_position_bias_table"] = rpb.flatten(1).T.contiguous()
    return out


def _swin_table(table: Tensor, key: str) -> Tensor:
    """Swin's ``((2Kh - 1) (2Kw - 1), heads)`` bias table, indexed by the query's offset
    from the key (``coords[:, :, None] - coords[:, None, :]``), as localconn's table of
    the same shape, indexed by the key's offset from the query: both axes reversed."""
    rows, heads = table.shape
    side = round(rows ** 0.5)
    if side * side != rows or side % 2 == 0:
        raise ValueError(f"state_dict: {key} must be a square window's ((2K - 1)^2, heads) "
                         f"table, got shape {tuple(table.shape)}")
    return table.reshape(side, side, heads).flip(0, 1).reshape(rows, heads).contiguous()


def swin(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A Swin Transformer's state dict -> localconn's Swin (``localconn.models``).

    Takes timm's layout (``swin_tiny_patch4_window7_224`` and the other
    ``SwinTransformer`` models: ``layers.i.downsample`` merges *before* stage ``i``,
    ``head.fc``) or the official code's (``layers.i.downsample`` after stage ``i``,
    ``head``); localconn's models keep the official names. Build the model with the
    checkpoint's sizes, e.g. ``localconn.models.create("swin_tiny")`` for Swin-T,
    ``"swin_base"`` for Swin-B (``embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8,
    16, 32)``), or ``create("swin_tiny", embed_dim=..., depths=..., num_heads=...,
    window_size=...)``; then ``model(x)`` equals the source model's ``model(x)`` on NCHW
    images.

    Key by key: the attention's ``qkv`` and ``proj`` ``Linear`` weights become 1x1
    convolutions; each ``relative_position_bias_table`` is reversed along both axes
    (Swin indexes it by query - key, localconn by key - query); timm's
    ``layers.{i}.downsample.*`` move to ``layers.{i - 1}.downsample.*`` and
    ``head.fc.*`` to ``head.*``; the ``relative_position_index`` and ``attn_mask``
    buffers are dropped (localconn builds its own). The patch embedding, the norms, the
    MLPs and the merging's ``reduction`` keep their names and shapes (the merging
    concatenates the 2x2 pixels in Swin's order, as timm does).

    Example::

        >>> sd = swin({"layers.1.downsample.reduction.weight": torch.randn(4, 8),
        ...            "head.fc.weight": torch.randn(10, 4)})
        >>> sorted(sd)
        ['head.weight', 'layers.0.downsample.reduction.weight']
    """
    timm = any(re.match(r"layers\.\d+\.downsample\.", k) for k in state_dict) and not any(
        k.startswith("layers.0.downsample.") for k in state_dict)
    timm = timm or "head.fc.weight" in state_dict
    out = {}
    for key, value in state_dict.items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        new = key
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", key)
        if m and timm:
            if int(m[1]) == 0:
                raise ValueError(f"state_dict: {key}: a timm checkpoint merges before stages "
                                 "1-3 only")
            new = f"layers.{int(m[1]) - 1}.downsample.{m[2]}"
        elif key.startswith("head.fc."):
            new = "head." + key[len("head.fc."):]
        if re.search(r"\.attn\.(qkv|proj)\.weight$", key):
            if value.dim() != 2:
                raise ValueError(f"state_dict: {key} must be a Linear's (out, in) weight, got "
                                 f"shape {tuple(value.shape)}")
            value = _conv1x1(value)
        elif key.endswith("relative_position_bias_table"):
            value = _swin_table(value, key)
        out[new] = value
    return out


# the paper's code's dynamic filter generators -> localconn.generators' ``generator.net``
_DWNET_GENERATOR = {  # DynamicDWConv (per sample), IDynamicDWConv (per position)
    "conv1.weight": "generator.net.0.weight", "bn.": "generator.net.1.",
    "conv2.weight": "generator.net.3.weight", "conv2.bias": "generator.net.3.bias",
    "conv1.0.weight": "generator.net.0.weight", "conv1.1.": "generator.net.1.",
    "conv2.0.weight": "generator.net.3.weight", "conv2.0.bias": "generator.net.3.bias",
}


def dwnet(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A DWNet of the paper's code (Atten4Vis/DemystifyLocalViT) -> localconn's DWNet.

    The three variants: static (``nn.Conv2d(C, C, K, groups=C)`` as ``attn2conv.conv``),
    dynamic (``DynamicDWConv``: a per-sample generator ``conv1`` / ``bn`` / ``conv2``
    from the pooled input, and ``bias``) and inhomogeneous dynamic (``IDynamicDWConv``:
    a per-position generator ``conv1 = (Conv2d with bias, BatchNorm2d, ReLU)``,
    ``conv2 = (Conv2d,)``). localconn's models keep the code's names for everything else
    (``patch_embed``, ``layers.i.blocks.j.attn2conv.conv0 / bn0 / bn / conv2 / bn2``,
    the block's ``bn`` and ``mlp``, ``layers.i.downsample``, ``norm``, ``head``); the
    generators become :mod:`localconn.generators`' ``generator.net.{0, 1, 3}``
    (filters in the same ``(C or G, K, K)`` channel order).

    The inhomogeneous generator's first convolution has a bias that localconn's lacks;
    a BatchNorm follows it, so the bias is folded into its running mean exactly
    (``BN(z + b)`` with mean ``m`` is ``BN(z)`` with mean ``m - b``; in training the
    batch mean absorbs it either way). Build the model with the checkpoint's sizes,
    e.g. ``create("idynamic_dwnet_tiny", groups=C // group_channels)``.

    Example::

        >>> sd = dwnet({"layers.0.blocks.0.attn2conv.conv.conv1.weight": torch.ones(2, 8, 1, 1)})
        >>> list(sd)
        ['layers.0.blocks.0.attn2conv.conv.generator.net.0.weight']
    """
    out: dict[str, Tensor] = {}
    folds: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = re.match(r"(.*\.attn2conv\.conv\.)(.*)", key)
        if not m or m[2] in ("weight", "bias"):  # (the static conv, the dynamic bias)
            out[key] = value
            continue
        head, rest = m[1], m[2]
        if rest == "conv1.0.bias":  # the inhomogeneous generator's bias: folded below
            folds[head] = value
            continue
        for old, new in _DWNET_GENERATOR.items():
            if rest == old or (old.endswith(".") and rest.startswith(old)):
                out[head + new + rest[len(old):]] = value
                break
        else:
            raise ValueError(f"state_dict: {key} is not a parameter of DWNet's dynamic "
                             "convolutions")
    for head, bias in folds.items():
        key = head + "generator.net.1.running_mean"
        if key not in out:
            raise ValueError(f"state_dict: {head}conv1.0.bias without the BatchNorm after it "
                             f"({head}conv1.1.running_mean)")
        out[key] = out[key] - bias
    return out


_INVOLUTION = {"conv1.conv.weight": "generator.net.0.weight", "conv1.bn.": "generator.net.1.",
               "conv2.conv.weight": "generator.net.3.weight",
               "conv2.conv.bias": "generator.net.3.bias"}


def involution(state_dict: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """RedNet's ``involution`` layer -> :class:`~localconn.LocalConn2d`.

    The layer (Li et al., 2021; mmcv ``ConvModule`` names): a per-position generator
    ``conv1 = (conv 1x1 C -> C/4 without bias, bn, ReLU)``, ``conv2 = (conv 1x1 C/4 ->
    G K K with bias)``, ``G = C / 16`` groups of 16 channels, applied by ``nn.Unfold(K,
    padding=(K - 1) // 2, stride)``; at stride 2 the generator reads ``AvgPool2d(2, 2)``
    of the input. The localconn layer computing it::

        LocalConn2d(C, K, stride, share="channel", groups=C // 16, dynamic=True,
                    bias=False, generator_input="avgpool")

    Keys: ``conv1.conv`` -> ``generator.net.0``, ``conv1.bn`` -> ``generator.net.1``,
    ``conv2.conv`` -> ``generator.net.3`` (filters in the same ``(G, K, K)`` channel
    order). ``prefix`` selects one layer of a RedNet's state dict (e.g.
    ``"layer1.0.conv2."``).

    Example::

        >>> sd = involution({"conv2.conv.bias": torch.zeros(49 * 4)})
        >>> list(sd)
        ['generator.net.3.bias']
    """
    out = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for old, new in _INVOLUTION.items():
            if rest == old or (old.endswith(".") and rest.startswith(old)):
                out[new + rest[len(old):]] = value
                break
        else:
            raise ValueError(f"state_dict: {key} is not a parameter of involution's generator "
                             f"(under prefix {prefix!r})")
    return out
