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
from torch import Tensor, nn

from .backends import check_backend_name
from .functional import local_conn2d
from .generators import GlobalWeightGenerator, PositionWeightGenerator, sample_at_centres
from .geometry import IntPair, Padding, check_window, make_geometry, pair
from .validation import check_int, check_module_input

SHARES = ("spatial", "channel", "none")


class LocalConn2d(nn.Module):
    """Channel-wise locally-connected layer (DESIGN.md section 5).

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
    ) -> None:
        super().__init__()
        check_int(channels, "channels")
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
        self._build(out_size, bias)

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

    def _build(self, out_size: tuple[int, int], bias: bool) -> None:
        C, G, (Kh, Kw) = self.channels, self.groups, self.kernel_size
        if self.dynamic:
            if self.share == "spatial":
                self.generator = GlobalWeightGenerator(C, self.kernel_size, self.reduction)
            else:
                self.generator = PositionWeightGenerator(C, G, self.kernel_size, self.reduction)
            self.register_parameter("weight", None)
        elif self.share == "spatial":
            self.weight = nn.Parameter(torch.empty(C, 1, Kh, Kw))
        else:
            self.weight = nn.Parameter(torch.empty(1, G, Kh, Kw, *out_size))
        self.bias = nn.Parameter(torch.empty(C)) if bias else None
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
            geo = make_geometry(
                tuple(x.shape[-2:]), self.kernel_size, self.stride, self.padding, self.dilation
            )
            x = sample_at_centres(x, geo)
        return self.generator(x)

    def forward(self, x: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """``local_conn2d(x, weight or self.make_weight(x), self.bias, ...)``.

        ``x`` must have this layer's channels (and, for position-specific static
        weights, its ``input_size``) and, outside ``torch.autocast``, the dtype of
        its parameters: anything else is a ValueError / TypeError naming ``x``.
        """
        param = next(self.parameters(), None)
        size = self.input_size if (not self.dynamic and self.share != "spatial") else None
        check_module_input(x, self.channels, None if param is None else param.dtype, size)
        if weight is None:
            weight = self.make_weight(x)
        return local_conn2d(
            x,
            weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            window=self.window,
            backend=self.backend,
        )

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
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        return s

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, backend: Optional[str] = None) -> LocalConn2d:
        """A static ``share="spatial"`` layer with the same outputs as depth-wise ``conv``.

        ``conv`` must have ``groups == in_channels == out_channels`` and
        ``padding_mode="zeros"``; the weights are copied (same device/dtype).

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
        if conv.padding_mode != "zeros":
            raise ValueError(f"conv must have padding_mode='zeros', got {conv.padding_mode!r}")
        padding: Union[str, tuple[int, ...]] = conv.padding
        m = cls(
            C,
            conv.kernel_size,
            stride=conv.stride,
            padding=padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
            backend=backend,
        )
        m = m.to(device=conv.weight.device, dtype=conv.weight.dtype)
        m.load_state_dict(conv.state_dict())
        return m
