"""Peers' checkpoints into localconn's modules (``localconn.convert``), each against a
faithful re-creation of the peer's module (its parameter names and shapes, its forward
written from the peer's definitions) on random weights: equal outputs after loading.
(timm itself does not import here: it needs torchvision, whose wheels do not load
beside this machine's torch 2.13 CPU build.)

timm's ``SwinTransformer`` (timm 1.0): tokens ``(B, H, W, C)``, ``PatchEmbed`` (conv,
then LayerNorm), stages that merge *first* (``layers.i.downsample`` for i >= 1: the 2x2
pixels by ``reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5)``), blocks with
window partition, ``relative_position_index`` from ``coords[:, :, None] - coords[:,
None, :]``, the shifted windows' ``-100`` mask after ``torch.roll(-s)``, window and
shift clamped where a stage is no larger than the window, ``head.fc`` after a mean over
the tokens.

NATTEN's ``NeighborhoodAttention2D`` (NAT, DiNAT): ``Linear`` qkv and proj on heads-last
tokens, ``rpb (heads, 2Kh - 1, 2Kw - 1)``, the query scaled before ``na2d_qk``; its
attention here is the float64 oracle of ``test_neighborhood.py`` (written from NATTEN's
definitions, sharing no code with the package).
"""

from __future__ import annotations

import doctest
import re
from typing import Optional

import pytest
import torch
from random_data import randn
from test_neighborhood import oracle
from tolerances import assert_close
from torch import nn

import localconn
from localconn import LocalAttention2d, convert
from localconn.models.registry import create


class NattenNA2D(nn.Module):
    """NATTEN's ``NeighborhoodAttention2D`` (0.14-0.17): names, shapes and forward."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int, dilation: int = 1,
                 rel_pos_bias: bool = True, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.kernel_size, self.dilation = kernel_size, dilation
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.rpb = (nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
                    if rel_pos_bias else None)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        B, H, W, C = x.shape
        qkv = self.qkv(x).reshape(B, H, W, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(3)  # heads-last (B, H, W, heads, D), as the oracle takes them
        out = oracle(q * self.scale, k, v, (self.kernel_size,) * 2, (self.dilation,) * 2,
                     rpb=self.rpb, scale=1.0)[0]
        return self.proj(out.reshape(B, H, W, C))


@pytest.mark.parametrize("rpb, dilation, qkv_bias, qk_scale",
                         [(True, 1, True, None), (False, 2, False, 0.3), (True, 3, True, None)])
def test_natten(rpb: bool, dilation: int, qkv_bias: bool, qk_scale: Optional[float]) -> None:
    dim, heads, K = 24, 3, 5
    peer = NattenNA2D(dim, heads, K, dilation, rpb, qkv_bias, qk_scale).double()
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(randn(*p.shape, seed=p.numel(), dtype=torch.float64))
    ours = LocalAttention2d(dim, heads, K, dilation=dilation, rel_pos_bias=rpb,
                            qkv_bias=qkv_bias, qk_scale=qk_scale).double()
    ours.load_state_dict(convert.natten(peer.state_dict()))
    x = randn(2, 16, 17, dim, seed=7, dtype=torch.float64)  # (B, H, W, C)
    with localconn.use_backend("reference"):
        got = ours(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    assert_close(got, peer(x), what="converted NATTEN module")
    # a whole model's state dict: the prefix picks one module
    nested = {f"levels.0.blocks.1.attn.{k}": v for k, v in peer.state_dict().items()}
    nested["levels.0.blocks.1.norm1.weight"] = torch.ones(dim)
    assert convert.natten(nested, "levels.0.blocks.1.attn.").keys() == \
        convert.natten(peer.state_dict()).keys()


def test_natten_rejects_what_it_does_not_know() -> None:
    good = NattenNA2D(8, 2, 3).state_dict()
    for bad, word in (({**good, "extra": torch.ones(1)}, "extra"),
                      ({k: v for k, v in good.items() if k != "proj.bias"}, "missing"),
                      ({**good, "qkv.weight": torch.ones(24, 8, 1, 1)}, "Linear"),
                      ({**good, "rpb": torch.ones(2, 25)}, "rpb")):
        with pytest.raises(ValueError, match=word):
            convert.natten(bad)


def test_doctests() -> None:
    result = doctest.testmod(convert, extraglobs={"torch": torch})
    assert result.attempted and not result.failed


# ------------------------------------------------------------------ timm's Swin


def _partition(x: torch.Tensor, w: int) -> torch.Tensor:
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, C)


def _reverse(windows: torch.Tensor, w: int, H: int, W: int) -> torch.Tensor:
    C = windows.shape[-1]
    x = windows.view(-1, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def _relative_position_index(w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # query - key
    return (rel[..., 0] + w - 1) * (2 * w - 1) + rel[..., 1] + w - 1


class TimmWindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.num_heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", _relative_position_index(window),
                             persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(N, N, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(-1, nw, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(B_, N, C))


class TimmMlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TimmSwinBlock(nn.Module):
    def __init__(self, dim: int, res: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.window = res if res <= window else window  # timm's _calc_window_shift
        self.shift = 0 if res <= self.window else shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TimmWindowAttention(dim, heads, self.window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TimmMlp(dim)
        mask = None
        if self.shift:
            img = torch.zeros(1, res, res, 1)
            cnt = 0
            cuts = (slice(0, -self.window), slice(-self.window, -self.shift),
                    slice(-self.shift, None))
            for h in cuts:
                for w in cuts:
                    img[:, h, w, :] = cnt
                    cnt += 1
            win = _partition(img, self.window).squeeze(-1)
            mask = (win.unsqueeze(1) - win.unsqueeze(2)).ne(0).float() * -100.0
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_partition(y, self.window), self.attn_mask)
        y = _reverse(y, self.window, H, W)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class TimmPatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class TimmStage(nn.Module):
    def __init__(self, dim: int, res: int, depth: int, heads: int, window: int,
                 merge: bool) -> None:
        super().__init__()
        self.downsample = TimmPatchMerging(dim // 2) if merge else nn.Identity()
        self.blocks = nn.Sequential(*(TimmSwinBlock(dim, res, heads, window,
                                                    window // 2 if i % 2 else 0)
                                      for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class TimmPatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 4, stride=4)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class TimmHead(nn.Module):
    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(1, 2)))


class TimmSwin(nn.Module):
    def __init__(self, img: int, dim: int, depths: tuple, heads: tuple, window: int,
                 classes: int) -> None:
        super().__init__()
        self.patch_embed = TimmPatchEmbed(dim)
        self.layers = nn.Sequential(*(
            TimmStage(dim * 2 ** i, img // 4 // 2 ** i, d, h, window, i > 0)
            for i, (d, h) in enumerate(zip(depths, heads))))
        self.norm = nn.LayerNorm(dim * 2 ** (len(depths) - 1))
        self.head = TimmHead(dim * 2 ** (len(depths) - 1), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.layers(self.patch_embed(x))))


def test_timm_swin() -> None:
    """A timm-layout Swin (4 stages, shifted windows, a stage the size of the window and
    one smaller) loads into localconn's Swin and gives its logits."""
    cfg = dict(img=64, dim=16, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), window=4, classes=5)
    peer = TimmSwin(**cfg).double()
    with torch.no_grad():
        for i, (name, p) in enumerate(peer.named_parameters()):
            scale = 1.0 if "norm" in name and name.endswith("weight") else 0.3
            p.copy_((1.0 if scale == 1.0 else 0.0)
                    + scale * randn(*p.shape, seed=100 + i, dtype=torch.float64))
    ours = create("swin_tiny", img_size=cfg["img"], embed_dim=cfg["dim"], depths=cfg["depths"],
                  num_heads=cfg["heads"], window_size=cfg["window"], num_classes=cfg["classes"],
                  drop_path_rate=0.0).double().eval()
    converted = convert.swin(peer.state_dict())
    ours.load_state_dict(converted)
    x = randn(2, 3, 64, 64, seed=3, dtype=torch.float64)
    with localconn.use_backend("reference"), torch.no_grad():
        got = ours(x)
    assert_close(got, peer(x), what="converted timm Swin")
    # the official code's layout (merging after each stage, head without .fc) loads too
    official = {re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}"
                       ".downsample", k).replace("head.fc.", "head."): v
                for k, v in peer.state_dict().items()}
    assert all(torch.equal(a, b) for a, b in zip(convert.swin(official).values(),
                                                  converted.values()))
    assert convert.swin(official).keys() == converted.keys()


# ----------------------------------------------- the paper's DWNet (DemystifyLocalViT)
# tokens (B, L, C); PatchEmbed (conv, LayerNorm on tokens); SpatialBlock: x + DWBlock(x),
# then x + mlp(bn(x)); DWBlock: conv0 -> bn0 -> ReLU -> conv -> bn -> ReLU -> conv2 -> bn2;
# PatchMerging after each stage but the last; norm, mean over tokens, head.


class SeedDynamicDWConv(nn.Module):
    """Per-sample filters from the pooled input, applied by folding the batch."""

    def __init__(self, dim: int, K: int) -> None:
        super().__init__()
        self.dim, self.K = dim, K
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(dim, dim // 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim // 4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(dim // 4, dim * K * K, 1)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weight = self.conv2(self.relu(self.bn(self.conv1(self.pool(x)))))
        y = torch.nn.functional.conv2d(x.reshape(1, -1, h, w),
                                       weight.view(b * c, 1, self.K, self.K),
                                       self.bias.repeat(b), padding=self.K // 2, groups=b * c)
        return y.view(b, c, h, w)


class SeedIDynamicDWConv(nn.Module):
    """Per-position filters (G, K, K) per pixel, shared by a group's channels."""

    def __init__(self, dim: int, K: int, group_channels: int) -> None:
        super().__init__()
        self.K, self.groups = K, dim // group_channels
        self.conv1 = nn.Sequential(nn.Conv2d(dim, dim // 4, 1), nn.BatchNorm2d(dim // 4),
                                   nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(dim // 4, K * K * self.groups, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weight = self.conv2(self.conv1(x)).view(b, self.groups, 1, self.K * self.K, h, w)
        cols = torch.nn.functional.unfold(x, self.K, padding=(self.K - 1) // 2)
        cols = cols.view(b, self.groups, c // self.groups, self.K * self.K, h, w)
        return (cols * weight).sum(3).view(b, c, h, w)


class SeedDWBlock(nn.Module):
    def __init__(self, dim: int, K: int, kind: str, group_channels: int) -> None:
        super().__init__()
        self.conv0, self.bn0 = nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim)
        self.conv = {"static": lambda: nn.Conv2d(dim, dim, K, padding=K // 2, groups=dim),
                     "dynamic": lambda: SeedDynamicDWConv(dim, K),
                     "idynamic": lambda: SeedIDynamicDWConv(dim, K, group_channels)}[kind]()
        self.bn, self.relu = nn.BatchNorm2d(dim), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x = self.relu(self.bn0(self.conv0(x.permute(0, 3, 1, 2))))
        x = self.relu(self.bn(self.conv(x)))
        return self.bn2(self.conv2(x)).permute(0, 2, 3, 1)


class SeedSpatialBlock(nn.Module):
    def __init__(self, dim: int, res: int, K: int, kind: str, group_channels: int) -> None:
        super().__init__()
        self.res = res
        self.attn2conv = SeedDWBlock(dim, K, kind, group_channels)
        self.mlp = TimmMlp(dim)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C)
        B, L, C = x.shape
        x = x + self.attn2conv(x.view(B, self.res, self.res, C)).reshape(B, L, C)
        y = self.bn(x.view(B, self.res, self.res, C).permute(0, 3, 1, 2))
        return x + self.mlp(y.permute(0, 2, 3, 1).reshape(B, L, C))


class SeedPatchMerging(nn.Module):
    def __init__(self, res: int, dim: int) -> None:
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        x = x.view(B, self.res, self.res, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class SeedLayer(nn.Module):
    def __init__(self, dim: int, res: int, depth: int, K: int, kind: str, gc: int,
                 merge: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SeedSpatialBlock(dim, res, K, kind, gc) for _ in range(depth))
        self.downsample = SeedPatchMerging(res, dim) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class SeedPatchEmbed(TimmPatchEmbed):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SeedDWNet(nn.Module):
    def __init__(self, img: int, dim: int, depths: tuple, K: int, kind: str,
                 groups: int, classes: int) -> None:
        super().__init__()
        self.patch_embed = SeedPatchEmbed(dim)
        n = len(depths)  # the code's group_channels is the stage's head count: dim / 32 groups
        self.layers = nn.ModuleList(
            SeedLayer(dim * 2 ** i, img // 4 // 2 ** i, d, K, kind, dim * 2 ** i // groups,
                      i < n - 1)
            for i, d in enumerate(depths))
        self.norm = nn.LayerNorm(dim * 2 ** (n - 1))
        self.head = nn.Linear(dim * 2 ** (n - 1), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(1))


@pytest.mark.parametrize("kind", ["static", "dynamic", "idynamic"])
def test_dwnet(kind: str) -> None:
    """The paper's DWNet / dynamic / inhomogeneous dynamic DWNet (random weights and
    BatchNorm statistics, eval mode) loads into localconn's and gives its logits."""
    img, dim, depths, K, groups = 64, 16, (1, 2, 1, 1), 5, 4
    peer = SeedDWNet(img, dim, depths, K, kind, groups, 7).double().eval()
    with torch.no_grad():
        for i, (name, t) in enumerate(peer.state_dict().items()):
            if t.is_floating_point():
                r = randn(*t.shape, seed=200 + i, dtype=torch.float64)
                positive = name.endswith(("running_var", "norm.weight", "bn.weight",
                                          "bn0.weight", "bn2.weight", "1.weight"))
                t.copy_(1.0 + 0.2 * r.abs() if positive else 0.3 * r)
    name = {"static": "dwnet_tiny", "dynamic": "dynamic_dwnet_tiny",
            "idynamic": "idynamic_dwnet_tiny"}[kind]
    extra = {"groups": groups} if kind == "idynamic" else {}
    ours = create(name, img_size=img, embed_dim=dim, depths=depths, kernel_size=K,
                  num_classes=7, drop_path_rate=0.0, **extra).double().eval()
    ours.load_state_dict(convert.dwnet(peer.state_dict()))
    x = randn(2, 3, img, img, seed=5, dtype=torch.float64)
    with localconn.use_backend("reference"), torch.no_grad():
        got = ours(x)
    assert_close(got, peer(x), what=f"converted {kind} DWNet")


def test_dwnet_rejects_unknown_generator_keys() -> None:
    with pytest.raises(ValueError, match="not a parameter"):
        convert.dwnet({"layers.0.blocks.0.attn2conv.conv.extra.weight": torch.ones(1)})
    with pytest.raises(ValueError, match="BatchNorm"):
        convert.dwnet({"layers.0.blocks.0.attn2conv.conv.conv1.0.bias": torch.ones(1)})


# ------------------------------------------------------ RedNet's involution layer


class ConvModule(nn.Module):
    """mmcv's ConvModule names: ``conv``, then ``bn`` and ReLU when asked."""

    def __init__(self, cin: int, cout: int, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=not norm)
        self.norm = norm
        if norm:
            self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return torch.relu(self.bn(x)) if self.norm else x


class Involution(nn.Module):
    """d-li14/involution's layer: names, shapes and forward."""

    def __init__(self, channels: int, K: int, stride: int) -> None:
        super().__init__()
        self.K, self.stride, self.channels = K, stride, channels
        self.group_channels = 16
        self.groups = channels // self.group_channels
        self.conv1 = ConvModule(channels, channels // 4, norm=True)
        self.conv2 = ConvModule(channels // 4, K * K * self.groups, norm=False)
        self.avgpool = nn.AvgPool2d(stride, stride) if stride > 1 else None
        self.unfold = nn.Unfold(K, 1, (K - 1) // 2, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv2(self.conv1(x if self.avgpool is None else self.avgpool(x)))
        b, c, h, w = weight.shape
        weight = weight.view(b, self.groups, self.K * self.K, h, w).unsqueeze(2)
        cols = self.unfold(x).view(b, self.groups, self.group_channels, self.K * self.K, h, w)
        return (weight * cols).sum(3).view(b, self.channels, h, w)


@pytest.mark.parametrize("stride", [1, 2])
def test_involution(stride: int) -> None:
    C, K = 32, 7
    peer = Involution(C, K, stride).double().eval()
    with torch.no_grad():
        for i, (name, t) in enumerate(peer.state_dict().items()):
            if t.is_floating_point():
                r = randn(*t.shape, seed=300 + i, dtype=torch.float64)
                t.copy_(1.0 + 0.2 * r.abs() if name.endswith(("running_var", "bn.weight"))
                        else 0.3 * r)
    ours = localconn.LocalConn2d(C, K, stride, share="channel", groups=C // 16, dynamic=True,
                                 bias=False, generator_input="avgpool").double().eval()
    ours.load_state_dict(convert.involution(peer.state_dict()))
    x = randn(2, C, 14, 14, seed=9, dtype=torch.float64)
    with localconn.use_backend("reference"), torch.no_grad():
        got = ours(x)
    assert_close(got, peer(x), what=f"converted involution, stride {stride}")
    nested = {f"layer1.0.conv2.{k}": v for k, v in peer.state_dict().items()}
    assert convert.involution(nested, "layer1.0.conv2.").keys() == \
        convert.involution(peer.state_dict()).keys()
    with pytest.raises(ValueError, match="involution"):
        convert.involution({**peer.state_dict(), "conv3.weight": torch.ones(1)})


def test_generator_input_is_checked() -> None:
    with pytest.raises(ValueError, match="generator_input"):
        localconn.LocalConn2d(8, 3, generator_input="pool")
    with pytest.raises(ValueError, match="generator_input"):
        localconn.LocalConn2d(8, 3, dynamic=True, generator_input="avgpool")  # spatial
    m = localconn.LocalConn2d(16, 3, 2, share="channel", groups=1, dynamic=True,
                              generator_input="avgpool")
    assert "generator_input='avgpool'" in repr(m)
    with pytest.raises(ValueError, match="divisible by the stride"):
        m(torch.randn(1, 16, 9, 9))
