"""``LocalConn2d``: the locally-connected layer as a module, in every sharing mode.

==========================================  =========================================
paper's layer                               ``LocalConn2d`` arguments
==========================================  =========================================
depth-wise conv (DWNet)                     ``share="spatial"``
dynamic depth-wise conv (dynamic DWNet)     ``share="spatial", dynamic=True``
inhomogeneous dynamic DW conv, involution   ``share="channel", groups=G, dynamic=True``
local attention (aggregation step)          ``share="channel", groups=heads``, ``forward(x, weight=attn)``
locally connected, channel-shared           ``share="channel", groups=G, input_size=(H, W)``
locally connected, unshared                 ``share="none", input_size=(H, W)``
==========================================  =========================================
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backends import check_backend_name
from .functional import local_conn2d
from .generators import GlobalWeightGenerator, PositionWeightGenerator, sample_at_centres
from .geometry import IntPair, Padding, check_window, make_geometry, pair
from .scripting import NotScriptable
from .validation import check_int, check_module_input

SHARES = ("spatial", "channel", "none")
#: what a strided per-position generator reads (``generator_input``)
GENERATOR_INPUTS = ("centres", "avgpool")
#: nn.Conv2d's padding modes (the sliding window's padding filled with zeros, or F.pad's)
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def window_centres(x: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int],
                   padding: Padding, dilation: tuple[int, int]) -> Tensor:
    """``x`` at the centre of each sliding window (:func:`~localconn.generators.sample_at_centres`
    on ``x``'s own size): the per-position generator's input.

    Example::

        >>> window_centres(torch.randn(1, 4, 9, 9), (3, 3), (2, 2), 1, (1, 1)).shape
        torch.Size([1, 4, 5, 5])
    """
    geo = make_geometry(tuple(x.shape[-2:]), kernel_size, stride, padding, dilation)
    return sample_at_centres(x, geo)


def pad_input(x: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int],
              padding: Padding, dilation: tuple[int, int], mode: str) -> Tensor:
    """``x`` padded as the sliding window's ``padding`` says, by ``F.pad``'s ``mode``
    (``"reflect"``, ``"replicate"`` or ``"circular"``): ``nn.Conv2d``'s ``padding_mode``.

    ``local_conn2d(pad_input(x, ..., mode), w, padding=0)`` is then the layer with that
    padding. Example::

        >>> pad_input(torch.randn(1, 2, 5, 5), (3, 3), (1, 1), "same", (1, 1), "reflect").shape
        torch.Size([1, 2, 7, 7])
    """
    top, bottom, left, right = make_geometry(
        tuple(x.shape[-2:]), kernel_size, stride, padding, dilation).padding
    return F.pad(x, (left, right, top, bottom), mode=mode)


def weight_or(weight: Optional[Tensor], default: Tensor) -> Tensor:
    """``weight`` if given, else ``default``: the optional weight of
    :meth:`LocalConn2d.forward` as an FX graph records it (a placeholder whose value is
    known only when the graph runs).

    Example::

        >>> weight_or(None, torch.ones(1)).item()
        1.0
    """
    return default if weight is None else weight


# FX leaf calls (torch.fx.symbolic_trace, torchvision's create_feature_extractor): the
# shape-dependent parts of the forward pass are recorded as calls, not traced into
torch.fx.wrap("local_conn2d")
torch.fx.wrap("window_centres")
torch.fx.wrap("pad_input")
torch.fx.wrap("weight_or")


class LocalConn2d(NotScriptable, nn.Module):
    """Channel-wise locally-connected layer (docs/design.md section 5).

    ``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]``
    with the weight from the module (a parameter or a generator) or given
    to :meth:`forward`.

    Args:
        channels: ``C`` (input and output channels).
        kernel_size: ``K`` or ``(Kh, Kw)``.
        stride, dilation: per axis.
        padding: ``None`` (default) means ``dilation * (K - 1) // 2`` per
            axis for the sliding window (same size at stride 1 for odd
            kernels) and 0 for the others; also an int, a pair, ``"same"``
            or ``"valid"``.
        bias: add a learnable per-channel bias.
        share: ``"spatial"`` (one filter per channel, shared across
            positions: depth-wise conv), ``"channel"`` (one filter per
            position, shared by the ``C // groups`` channels of each group)
            or ``"none"`` (one per channel and position).
        dynamic: predict the weights from the input with the paper's
            generators (global-pool generator for ``"spatial"``, per-position
            generator for ``"channel"``/``"none"``, hidden width ``C //
            reduction``).
        groups: number of weight groups ``G`` for ``share="channel"`` (a
            divisor of ``C``).
        input_size: ``(H, W)`` of the input; needed by static ``"channel"``
            and ``"none"`` (their weights are position-specific).
        window: ``"sliding"``, ``"neighborhood"`` or ``"block"``.
        reduction: ``r`` of the generators.
        backend: forwarded to :func:`~localconn.local_conn2d`.
        padding_mode: as ``nn.Conv2d``'s: ``"zeros"`` (default), ``"reflect"``,
            ``"replicate"`` or ``"circular"`` (the sliding window only: the input is
            padded by ``F.pad``, then the layer runs without padding).
        generator_input: what the per-position generator of a dynamic ``"channel"`` /
            ``"none"`` layer reads at stride > 1 (sliding window): ``"centres"``
            (default: the input at each window's centre) or ``"avgpool"``
            (``AvgPool2d(stride, stride)`` of the input, as involution / RedNet
            compute it; the pooled size must be the output size).
        device, dtype: where and in which floating dtype the parameters are made (as
            ``nn.Conv2d``'s factory arguments; ``device="meta"`` allocates nothing).

    Input ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched image (as ``nn.Conv2d``).

    Initialisation: static weights and the bias are drawn from
    ``U(-1/sqrt(Kh*Kw), 1/sqrt(Kh*Kw))``, which for ``share="spatial"`` is
    exactly ``nn.Conv2d``'s default for a depth-wise convolution. Generator
    convolutions keep PyTorch's default initialisation, BatchNorm starts at
    weight 1 and bias 0.

    A static ``"spatial"`` module stores ``weight`` as ``(C, 1, Kh, Kw)`` and
    ``bias`` as ``(C,)``: its ``state_dict`` loads from and into
    ``nn.Conv2d(C, C, K, groups=C)``.

    Example::

        >>> m = LocalConn2d(64, 7)                                   # DW conv
        >>> m = LocalConn2d(64, 7, dynamic=True)                     # dynamic DW conv
        >>> m = LocalConn2d(64, 7, share="channel", groups=4, dynamic=True)  # involution
        >>> m(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Optional[Padding] = None,
        dilation: IntPair = 1,
        bias: bool = True,
        *,
        share: str = "spatial",
        dynamic: bool = False,
        groups: Optional[int] = None,
        input_size: Optional[IntPair] = None,
        window: str = "sliding",
        reduction: int = 4,
        backend: Optional[str] = None,
        padding_mode: str = "zeros",
        generator_input: str = "centres",
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        check_int(channels, "channels")
        if generator_input not in GENERATOR_INPUTS:
            raise ValueError(f"generator_input must be one of {GENERATOR_INPUTS}, got "
                             f"{generator_input!r}")
        if generator_input != "centres" and not (dynamic and share != "spatial"
                                                 and window == "sliding"):
            raise ValueError(f"generator_input={generator_input!r} is for the per-position "
                             "generator of a dynamic share='channel' or 'none' layer on the "
                             f"sliding window, got share={share!r}, dynamic={dynamic!r}, "
                             f"window={window!r}")
        self.generator_input = generator_input
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if padding_mode != "zeros" and window != "sliding":
            raise ValueError(f"padding_mode={padding_mode!r} needs the sliding window (the "
                             f"{window!r} window has no padding), got window={window!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        factory = {"device": device, "dtype": dtype}
        if share not in SHARES:
            raise ValueError(f"share must be one of {SHARES}, got {share!r}")
        check_int(reduction, "reduction")
        self.channels = channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.window = check_window(window)
        if padding is None:
            padding = (
                tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation))
                if window == "sliding"
                else 0
            )
        self.padding = padding
        self.share = share
        self.dynamic = bool(dynamic)
        self.backend = backend
        check_backend_name(backend)
        self.groups = self._check_groups(groups)
        self.input_size = pair(input_size, "input_size") if input_size is not None else None
        if not self.dynamic and share != "spatial" and self.input_size is None:
            raise ValueError(
                f"input_size (H, W) is required for a static share={share!r} layer "
                "(its weights are position-specific)"
            )
        # validate the window arguments now, on the given or a small valid size
        Kh, Kw = self.kernel_size
        size = self.input_size or (Kh * self.dilation[0], Kw * self.dilation[1])
        out_size = make_geometry(
            size, self.kernel_size, self.stride, self.padding, self.dilation, window
        ).out_size
        self.reduction = reduction
        self.padding_mode = padding_mode
        self._build(out_size, bias, factory)

    def _check_groups(self, groups: Optional[int]) -> int:
        C = self.channels
        if self.share != "channel":
            if groups is not None and groups != (1 if self.share == "spatial" else C):
                raise ValueError(f"groups is only used with share='channel', got groups={groups!r}")
            return C
        if groups is None:
            raise ValueError("groups is required for share='channel' (a divisor of channels)")
        check_int(groups, "groups")
        if C % groups:
            raise ValueError(f"groups must be a divisor of channels={C}, got {groups!r}")
        return groups

    def _build(self, out_size: tuple[int, int], bias: bool, factory: dict) -> None:
        C, G, (Kh, Kw) = self.channels, self.groups, self.kernel_size
        if self.dynamic:
            if self.share == "spatial":
                self.generator = GlobalWeightGenerator(C, self.kernel_size, self.reduction)
            else:
                self.generator = PositionWeightGenerator(C, G, self.kernel_size, self.reduction)
            if factory["device"] is not None or factory["dtype"] is not None:
                self.generator.to(**{k: v for k, v in factory.items() if v is not None})
            self.register_parameter("weight", None)
        elif self.share == "spatial":
            self.weight = nn.Parameter(torch.empty(C, 1, Kh, Kw, **factory))
        else:
            self.weight = nn.Parameter(torch.empty(1, G, Kh, Kw, *out_size, **factory))
        self.bias = nn.Parameter(torch.empty(C, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Static weights and bias ~ ``U(-1/sqrt(Kh*Kw), 1/sqrt(Kh*Kw))``."""
        bound = 1.0 / math.sqrt(self.kernel_size[0] * self.kernel_size[1])
        for p in (self.weight, self.bias):
            if p is not None:
                nn.init.uniform_(p, -bound, bound)

    def make_weight(self, x: Tensor) -> Tensor:
        """The 6-D weight ``(Nw, Cw, Kh, Kw, Hw, Ww)`` this module uses for input ``x``."""
        if not self.dynamic:
            if self.share == "spatial":  # (C, 1, Kh, Kw) -> (1, C, Kh, Kw, 1, 1), a view
                return self.weight.squeeze(1)[None, :, :, :, None, None]
            return self.weight
        if self.share == "spatial":
            return self.generator(x)
        if self.window == "sliding":  # generate at the output positions
            if self.generator_input == "avgpool":
                return self.generator(self._pooled(x))
            x = window_centres(x, self.kernel_size, self.stride, self.padding, self.dilation)
        return self.generator(x)

    def _pooled(self, x: Tensor) -> Tensor:
        """Involution's generator input: ``AvgPool2d(stride, stride)`` of ``x`` (``x`` at
        stride 1); ``ValueError`` when its size is not the output size."""
        if self.stride == (1, 1):
            return x
        pooled = F.avg_pool2d(x, self.stride, self.stride)
        out = make_geometry(tuple(x.shape[-2:]), self.kernel_size, self.stride, self.padding,
                            self.dilation).out_size
        if tuple(pooled.shape[-2:]) != tuple(out):
            raise ValueError(f"generator_input='avgpool': the pooled input is "
                             f"{tuple(pooled.shape[-2:])}, the output {tuple(out)}; an input "
                             f"size divisible by the stride {self.stride} makes them equal")
        return pooled

    def forward(self, x: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """``local_conn2d(x, weight or self.make_weight(x), self.bias, ...)``.

        ``x`` is ``(N, C, H, W)`` or one unbatched image ``(C, H, W)``. It must have
        this layer's channels (and, for position-specific static weights, its
        ``input_size``) and, outside ``torch.autocast``, the dtype of its parameters:
        anything else is a ValueError / TypeError naming ``x``. A ``padding_mode``
        other than ``"zeros"`` pads ``x`` first (:func:`pad_input`); the weight
        generators see the unpadded input.
        """
        unbatched = isinstance(x, Tensor) and x.dim() == 3  # (an FX Proxy: batched)
        if unbatched:
            x = x.unsqueeze(0)
        param = next(self.parameters(), None)
        size = self.input_size if (not self.dynamic and self.share != "spatial") else None
        check_module_input(x, self.channels, None if param is None else param.dtype, size,
                           unbatched=True)
        if isinstance(weight, torch.fx.Proxy):  # FX: a placeholder, None unless given
            weight = weight_or(weight, self.make_weight(x))
        elif weight is None:
            weight = self.make_weight(x)
        padding = self.padding
        if self.padding_mode != "zeros":
            x = pad_input(x, self.kernel_size, self.stride, padding, self.dilation,
                          self.padding_mode)
            padding = 0
        y = local_conn2d(
            x,
            weight,
            self.bias,
            stride=self.stride,
            padding=padding,
            dilation=self.dilation,
            window=self.window,
            backend=self.backend,
        )
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        s = (
            f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, share={self.share!r}"
        )
        if self.share == "channel":
            s += f", groups={self.groups}"
        s += f", dynamic={self.dynamic}, window={self.window!r}"
        if self.input_size is not None:
            s += f", input_size={self.input_size}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.generator_input != "centres":
            s += f", generator_input={self.generator_input!r}"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        return s

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, backend: Optional[str] = None) -> LocalConn2d:
        """A static ``share="spatial"`` layer with the same outputs as depth-wise ``conv``.

        ``conv`` must have ``groups == in_channels == out_channels``; its
        ``padding_mode`` is kept and the weights are copied (same device/dtype).

        Example::

            >>> conv = nn.Conv2d(32, 32, 5, padding=2, groups=32)
            >>> m = LocalConn2d.from_conv2d(conv)
            >>> x = torch.randn(1, 32, 9, 9)
            >>> torch.allclose(m(x), conv(x), atol=1e-5)
            True
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        C = conv.in_channels
        if not (conv.groups == C == conv.out_channels):
            raise ValueError(
                "conv must be depth-wise (groups == in_channels == out_channels), got "
                f"in_channels={C}, out_channels={conv.out_channels}, groups={conv.groups}"
            )
        padding: Union[str, tuple[int, ...]] = conv.padding
        m = cls(
            C,
            conv.kernel_size,
            stride=conv.stride,
            padding=padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
            backend=backend,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        m.load_state_dict(conv.state_dict())
        return m

    def to_conv2d(self) -> nn.Conv2d:
        """The static depth-wise layer (``share="spatial"``, not dynamic, sliding window) as
        ``nn.Conv2d(C, C, K, groups=C)`` with its weights, stride, padding, dilation,
        ``padding_mode``, device and dtype: the inverse of :meth:`from_conv2d`.

        Example::

            >>> m = LocalConn2d(16, 3, stride=2, padding_mode="reflect")
            >>> conv = m.to_conv2d()
            >>> x = torch.randn(1, 16, 9, 9)
            >>> torch.allclose(conv(x), m(x), atol=1e-5)
            True
        """
        if self.dynamic or self.share != "spatial" or self.window != "sliding":
            raise ValueError(
                "to_conv2d needs a static share='spatial' layer on the sliding window (a "
                f"depth-wise convolution), got share={self.share!r}, dynamic={self.dynamic}, "
                f"window={self.window!r}")
        C = self.channels
        conv = nn.Conv2d(C, C, self.kernel_size, stride=self.stride, padding=self.padding,
                         dilation=self.dilation, groups=C, bias=self.bias is not None,
                         padding_mode=self.padding_mode, device=self.weight.device,
                         dtype=self.weight.dtype)
        conv.load_state_dict(self.state_dict())
        return conv

    @property
    def in_channels(self) -> int:
        """``C`` (as ``nn.Conv2d``'s; a channel-wise layer keeps its channels)."""
        return self.channels

    @property
    def out_channels(self) -> int:
        """``C`` (as ``nn.Conv2d``'s)."""
        return self.channels
