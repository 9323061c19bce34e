"""``LocalAttention2d``: multi-head local attention built from the primitives.

Local attention is the channel-shared dynamic case of the layer (docs/design.md
section 1): its weights are the softmax of ``q . k`` over the window, one
map per head shared by the head's channels. With ``hd = dim / heads`` and
channel ``c`` in head ``c // hd``::

    q, k, v = split(W_qkv x + b_qkv)                           (1x1 conv, dim -> 3 dim)
    L[n, h, kh, kw, o] = scale * sum_{c in h} q[n, c, o] k[n, c, i(o, kh, kw)]
                         + B[h, kh, kw, o]                      (relative position bias)
    A = softmax over (kh, kw) of L, masked taps excluded
    y[n, c, o] = sum_{kh, kw} dropout(A)[n, h(c), kh, kw, o] v[n, c, i(o, kh, kw)]
    out = W_proj y + b_proj                                     (1x1 conv, dim -> dim)

Where the fused kernels run (:mod:`localconn.fused_attention`, no dropout
while training), ``y`` comes from them without storing ``A``; otherwise ``L``
is ``local_corr2d(q, k, (N, heads, Kh, Kw, H, W))`` and ``y`` is
``local_conn2d(v, A)`` (:mod:`localconn.window_attention`, shared with
``na2d``), so every backend's kernels (and their autograd, docs/design.md section 4)
serve attention.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention_masks import allowed_taps, attention_axes, window_softmax
from .backends import check_backend_name
from .fused_attention import fused_arg, fused_unavailable
from .geometry import IntPair, check_window, make_geometry, pair
from .reference import memory_format_of
from .relative_position import relative_position_index, table_rows
from .scripting import NotScriptable
from .validation import check_int, check_module_input, check_probability
from .window_attention import window_aggregate, window_attention, window_logits


def like_input(out: Tensor, x: Tensor) -> Tensor:
    """``out`` in ``x``'s memory format (NCHW or channels_last): the module's result.

    Example::

        >>> x = torch.randn(1, 4, 3, 3).contiguous(memory_format=torch.channels_last)
        >>> like_input(torch.randn(1, 4, 3, 3), x).is_contiguous(memory_format=torch.channels_last)
        True
    """
    return out.contiguous(memory_format=memory_format_of(x))


def pad_to_blocks(x: Tensor, kernel: tuple[int, int]) -> Tensor:
    """``x`` zero-padded at the bottom and right to multiples of the block ``kernel`` (as
    Swin and timm pad a stage whose size the window does not divide); ``x`` itself when
    it is one already.

    Example::

        >>> pad_to_blocks(torch.randn(1, 4, 9, 7), (7, 7)).shape
        torch.Size([1, 4, 14, 7])
    """
    ph, pw = (-x.shape[-2]) % kernel[0], (-x.shape[-1]) % kernel[1]
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def crop_like(out: Tensor, x: Tensor) -> Tensor:
    """``out``'s top-left ``x.shape[-2:]`` in ``x``'s memory format (the inverse of
    :func:`pad_to_blocks` on the result).

    Example::

        >>> crop_like(torch.randn(1, 4, 14, 7), torch.randn(1, 4, 9, 7)).shape
        torch.Size([1, 4, 9, 7])
    """
    H, W = x.shape[-2:]
    if out.shape[-2] == H and out.shape[-1] == W:
        return out
    return like_input(out[..., :H, :W], x)


# FX leaf calls (torch.fx.symbolic_trace, torchvision's create_feature_extractor): the
# attention itself is recorded as calls; the projections, dropout and rolls are traced
torch.fx.wrap("window_attention")
torch.fx.wrap("window_logits")
torch.fx.wrap("window_softmax")
torch.fx.wrap("window_aggregate")
torch.fx.wrap("like_input")
torch.fx.wrap("pad_to_blocks")
torch.fx.wrap("crop_like")


class _Tables(NamedTuple):
    """Per-input-size constants: bias-table rows and the mask of excluded taps."""

    bias_index: Optional[Tensor]  # (Kh, Kw, H, W) int64
    excluded: Optional[Tensor]  # (Kh, Kw, H, W) bool, True = masked out of the softmax


class LocalAttention2d(NotScriptable, nn.Module):
    """Multi-head local self-attention on NCHW feature maps (Swin / neighborhood attention).

    Input ``(N, dim, H, W)`` (NCHW; a ``channels_last`` input gives a
    ``channels_last`` output), output of the same shape. Per head ``h`` and
    query position ``o``, the logits over the ``Kh x Kw`` window are
    ``scale * q[o] . k[i(o, k)] + B[h, delta(o, k)]``, the softmax runs over
    the window's taps, and the output is the attention-weighted sum of
    ``v[i(o, k)]`` followed by the output projection. qkv and the output
    projection are 1x1 convolutions (the ``qkv`` output channels are ``q``,
    ``k``, ``v``, each ordered head by head, as Swin's ``nn.Linear``).

    Windows (``i(o, k) = start(o) + k * d``, docs/design.md section 3):

    * ``"neighborhood"`` (NATTEN): centred on the query and shifted inside
      the image at the border, with ``dilation``; needs ``H, W >= K * d``.
    * ``"block"`` (Swin): non-overlapping ``Kh x Kw`` windows; needs ``H, W``
      divisible by the window. ``shift = s`` (``0 <= s < K``) gives Swin's
      shifted windows: the input is rolled by ``-s`` (``torch.roll``), tokens
      of different Swin regions of the rolled image are masked from each
      other, and the output is rolled back by ``+s``.
    * ``"sliding"``: zero padding ``K // 2 * d`` (before; ``(K - 1) * d - K // 2
      * d`` after, so the size is kept for even ``K`` too), stride 1, with
      ``dilation``; taps on the padding are masked out of the softmax.

    Masked taps get logit ``-inf`` (exact exclusion; Swin adds -100, which
    differs by a relative ``e^-100``). Every query keeps at least itself, so
    no softmax row is empty.

    Relative position bias: a learnable ``((2Kh-1)*(2Kw-1), heads)`` table
    (``relative_position_bias_table``, init trunc_normal std 0.02) indexed by
    the true offset ``delta = (key - query) / d`` per axis (see
    :mod:`localconn.relative_position`); at a neighborhood window's border it
    differs from the tap index. For ``"block"`` it is the offset within the
    block (the same in shifted windows). Index tables and masks are built once
    per ``(H, W, device)`` and cached (rebuilt inline while ``torch.compile``
    traces, where they become graph constants).

    Args:
        dim: channels ``C``.
        num_heads: heads; must divide ``dim``.
        kernel_size: window ``K`` or ``(Kh, Kw)``.
        window: ``"neighborhood"`` (default), ``"block"`` or ``"sliding"``.
        dilation: per axis; ``"neighborhood"`` and ``"sliding"`` only.
        shift: Swin's shift ``s`` or ``(sh, sw)``, ``0 <= s < K``; ``"block"`` only.
        qkv_bias: bias of the qkv projection.
        qk_scale: logit scale; default ``head_dim ** -0.5``.
        rel_pos_bias: learn a relative position bias.
        attn_drop: dropout probability on the attention weights.
        proj_drop: dropout probability after the output projection.
        fused: ``"auto"`` (default): the fused kernels (:mod:`localconn.fused_attention`;
            no ``(N, heads, Kh, Kw, H, W)`` map in memory, forward or backward) where they
            run: every window, no attention dropout while training, float16 / bfloat16
            on a CUDA device with Triton (float32 with ``True``), float32 / float16 /
            bfloat16 on the CPU (the CPU backend's kernels); the primitives otherwise,
            with the same result to the dtype's tolerance. ``True`` demands it (``ValueError`` saying why it
            cannot run), ``False`` always runs the primitives.
        backend: forwarded to :func:`~localconn.local_corr2d` and
            :func:`~localconn.local_conn2d`.
        pad_to_blocks: ``"block"`` only: an image whose size the window does not divide
            is zero-padded at the bottom and right to whole blocks and the result cropped
            (:func:`pad_to_blocks`; the padded tokens are attended, as Swin and timm do);
            ``False`` (default): such an image is a ``ValueError``.

    Low precision: under ``torch.autocast`` the projections and primitives run
    in the autocast dtype; the softmax is computed in float32.

    Example::

        >>> m = LocalAttention2d(32, 4, 7)                            # neighborhood attention
        >>> m(torch.randn(2, 32, 14, 14)).shape
        torch.Size([2, 32, 14, 14])
        >>> swin = LocalAttention2d(32, 4, 7, window="block", shift=3)  # shifted windows
        >>> swin.attention_weights(torch.randn(2, 32, 14, 14)).shape
        torch.Size([2, 4, 7, 7, 14, 14])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: IntPair,
        *,
        window: str = "neighborhood",
        dilation: IntPair = 1,
        shift: IntPair = 0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        rel_pos_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        backend: Optional[str] = None,
        fused: Union[bool, str, None] = "auto",
        pad_to_blocks: bool = False,
    ) -> None:
        super().__init__()
        check_int(dim, "dim")
        check_int(num_heads, "num_heads")
        if dim % num_heads:
            raise ValueError(f"num_heads must be a divisor of dim={dim}, got {num_heads!r}")
        if qk_scale is not None and (not isinstance(qk_scale, (int, float))
                                     or isinstance(qk_scale, bool)):
            raise TypeError(f"qk_scale must be None or a float, got {type(qk_scale).__name__} "
                            f"{qk_scale!r}")
        attn_drop = check_probability(attn_drop, "attn_drop")
        proj_drop = check_probability(proj_drop, "proj_drop")
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = dim // num_heads
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.window = check_window(window)
        self.dilation = pair(dilation, "dilation")
        self.shift = pair(shift, "shift")
        self._check_window_args()
        self.scale = float(qk_scale) if qk_scale is not None else self.head_dim**-0.5
        self.backend = backend
        self.fused = fused_arg(fused)
        check_backend_name(backend)
        if not isinstance(pad_to_blocks, bool):
            raise TypeError(f"pad_to_blocks must be a bool, got {type(pad_to_blocks).__name__}")
        if pad_to_blocks and self.window != "block":
            raise ValueError(f"pad_to_blocks needs window='block', got window={self.window!r}")
        self.pad_to_blocks = pad_to_blocks
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)
        if rel_pos_bias:
            rows = table_rows(self.kernel_size)
            self.relative_position_bias_table = nn.Parameter(torch.empty(rows, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            self.register_parameter("relative_position_bias_table", None)
        self._tables: dict[tuple[int, int, torch.device], _Tables] = {}

    def reset_parameters(self) -> None:
        """``qkv`` and ``proj`` as ``nn.Conv2d`` initialises them, the relative position bias
        table ``~ trunc_normal(std=0.02)`` (Swin's): the module's initialisation, again.

        Example::

            >>> m = LocalAttention2d(8, 2, 3)
            >>> with torch.no_grad():
            ...     _ = m.qkv.weight.zero_()
            >>> m.reset_parameters(); bool(m.qkv.weight.abs().sum() > 0)
            True
        """
        self.qkv.reset_parameters()
        self.proj.reset_parameters()
        if self.relative_position_bias_table is not None:
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _check_window_args(self) -> None:
        Kh, Kw = self.kernel_size
        if min(self.kernel_size) < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if any(self.shift):
            if self.window != "block":
                raise ValueError(
                    f"shift is only used with window='block', got window={self.window!r}"
                )
            if not all(0 <= s < K for s, K in zip(self.shift, self.kernel_size)):
                raise ValueError(
                    f"shift must satisfy 0 <= shift < kernel_size {self.kernel_size}, got {self.shift}"
                )
        elif min(self.shift) < 0:
            raise ValueError(f"shift must be >= 0, got {self.shift}")
        if self.window == "sliding":
            if min(self.dilation) < 1:
                raise ValueError(f"dilation must be >= 1, got {self.dilation}")
        else:  # validate on the smallest valid image
            size = (Kh * self.dilation[0], Kw * self.dilation[1])
            make_geometry(size, self.kernel_size, dilation=self.dilation, window=self.window)

    # ------------------------------------------------------------ tables

    def _build_tables(self, H: int, W: int, device: torch.device) -> _Tables:
        axes = attention_axes(self.window, (H, W), self.kernel_size, self.dilation)
        index = None
        if self.relative_position_bias_table is not None:
            index = relative_position_index(axes, device)
        allowed = allowed_taps(axes, self.shift, device)
        return _Tables(index, None if allowed is None else ~allowed)

    def _tables_for(self, H: int, W: int, device: torch.device) -> _Tables:
        """The cached tables for an ``H x W`` input (validates the size on first use)."""
        if torch.compiler.is_compiling():  # a graph constant; a cache would add guards
            return self._build_tables(H, W, device)
        key = (H, W, device)
        tables = self._tables.get(key)
        if tables is None:
            tables = self._tables[key] = self._build_tables(H, W, device)
        return tables

    # ------------------------------------------------------------ forward

    def _check_input(self, x: Tensor) -> None:
        check_module_input(x, self.dim, self.qkv.weight.dtype)

    def _rpb(self) -> Optional[Tensor]:
        """The bias table as NATTEN's ``(heads, 2Kh - 1, 2Kw - 1)`` (a view)."""
        if self.relative_position_bias_table is None:
            return None
        Kh, Kw = self.kernel_size
        return self.relative_position_bias_table.T.reshape(-1, 2 * Kh - 1, 2 * Kw - 1)

    def _attention(self, x: Tensor, rolled: bool = False) -> tuple[Tensor, Tensor]:
        """Attention ``(N, heads, Kh, Kw, H, W)`` and values, in the (rolled) frame they meet
        (``rolled``: ``x`` is already rolled by ``-shift``)."""
        self._check_input(x)
        tables = self._tables_for(*x.shape[2:], x.device)
        if any(self.shift) and not rolled:
            x = torch.roll(x, shifts=(-self.shift[0], -self.shift[1]), dims=(2, 3))
        q, k, v = self.qkv(x).chunk(3, dim=1)
        logits, excluded = window_logits(q * self.scale, k, self.num_heads, self.kernel_size,
                                         self.dilation, self.window, self.shift, self._rpb(),
                                         self.backend, tables)
        return window_softmax(logits, excluded).to(v.dtype), v

    def _fused_runs(self, x: Tensor) -> bool:
        """Whether the fused kernels run this call (``fused=True`` and they cannot: ValueError
        saying why)."""
        if self.fused is False:
            return False
        why = fused_unavailable(x, x, self.num_heads, self.backend,
                                self.relative_position_bias_table, auto=self.fused is None)
        if why is None and self.training and self.attn_drop.p > 0:
            why = "attention dropout in training (the map is needed)"
        if why is not None and self.fused:
            raise ValueError(f"fused=True, but the fused kernel cannot run: {why}")
        return why is None

    def forward(self, x: Tensor) -> Tensor:
        """``(N, dim, H, W) -> (N, dim, H, W)``: attention, aggregation, projection.

        With ``pad_to_blocks`` an image whose size the blocks do not divide is zero-padded
        at the bottom and right first (the padding attended like any key, Swin's and timm's
        rule; shifted windows' masks on the padded size) and the result cropped back.
        Under ``torch.fx.symbolic_trace`` (``x`` a Proxy) the same computation is recorded
        with the attention as leaf calls (:meth:`_attend_traced`)."""
        traced = isinstance(x, torch.fx.Proxy)
        if not traced:
            self._check_input(x)
        if self.pad_to_blocks:
            return crop_like(self._forward(pad_to_blocks(x, self.kernel_size), traced), x)
        return self._forward(x, traced)

    def _forward(self, x: Tensor, traced: bool) -> Tensor:
        if not traced:
            self._tables_for(*x.shape[2:], x.device)  # validates the size
        if any(self.shift):
            x = torch.roll(x, shifts=(-self.shift[0], -self.shift[1]), dims=(2, 3))
        if traced:
            out = self._attend_traced(x)
        elif self._fused_runs(x):
            q, k, v = self.qkv(x).chunk(3, dim=1)
            out = window_attention(q, k, v, self.num_heads, self.kernel_size, self.dilation,
                                   window=self.window, shift=self.shift, rpb=self._rpb(),
                                   scale=self.scale, backend=self.backend, fused=True)
        else:
            attn, v = self._attention(x, rolled=True)
            out = window_aggregate(self.attn_drop(attn), v, self.kernel_size, self.dilation,
                                   self.window, self.backend)
        out = self.proj_drop(self.proj(out))
        if any(self.shift):
            out = torch.roll(out, shifts=self.shift, dims=(2, 3))
        return like_input(out, x)

    def _attend_traced(self, x: Tensor) -> Tensor:
        """The attention of a (rolled) Proxy as FX leaf calls: :func:`window_attention`, which
        picks fused or not when the graph runs, or, with attention dropout in training, the
        logits, softmax and aggregation around the traced dropout."""
        q, k, v = self.qkv(x).chunk(3, dim=1)
        if self.training and self.attn_drop.p > 0:
            logits, excluded = window_logits(q * self.scale, k, self.num_heads, self.kernel_size,
                                             self.dilation, self.window, self.shift, self._rpb(),
                                             self.backend)
            attn = window_softmax(logits, excluded).to(v.dtype)
            return window_aggregate(self.attn_drop(attn), v, self.kernel_size, self.dilation,
                                    self.window, self.backend)
        return window_attention(q, k, v, self.num_heads, self.kernel_size, self.dilation,
                                window=self.window, shift=self.shift, rpb=self._rpb(),
                                scale=self.scale, backend=self.backend,
                                fused="auto" if self.fused is None else self.fused)

    def attention_weights(self, x: Tensor) -> Tensor:
        """The attention ``(N, heads, Kh, Kw, H, W)`` after the softmax, before dropout.

        ``[..., kh, kw, y, x]`` is the weight of query ``(y, x)`` on the key
        read by tap ``(kh, kw)``. For shifted windows the map is rolled back
        to the input's frame: query ``(y, x)``'s keys are taken in the rolled
        image, at ``(start_h(y - sh) + kh + sh, start_w(x - sw) + kw + sw)``
        modulo ``(H, W)``.
        """
        attn = self._attention(x)[0]
        if any(self.shift):
            attn = torch.roll(attn, shifts=self.shift, dims=(4, 5))
        return attn

    def extra_repr(self) -> str:
        s = (
            f"{self.dim}, num_heads={self.num_heads}, kernel_size={self.kernel_size}, "
            f"window={self.window!r}"
        )
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if any(self.shift):
            s += f", shift={self.shift}"
        if self.relative_position_bias_table is None:
            s += ", rel_pos_bias=False"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        if self.fused is not None:
            s += f", fused={self.fused}"
        if self.pad_to_blocks:
            s += ", pad_to_blocks=True"
        return s
