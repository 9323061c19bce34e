"""Independent float64 oracle for the three primitives, written from docs/design.md.

Plain Python loops over output positions and taps (numpy vectorises only over
batch and channels), so that it shares no code and no cleverness with the
package. Nothing here imports ``localconn``.

Conventions: ``stride``/``dilation`` are ``(h, w)`` pairs, ``pad`` is
``((top, bottom), (left, right))`` already resolved (see
:func:`resolve_padding`). Weights have the 6-D shape
``(Nw, Cw, Kh, Kw, Hw, Ww)`` with the broadcasting rules of DESIGN section 2.
Results are returned as float64 CPU tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch

Pair = tuple[int, int]
Pad = tuple[Pair, Pair]
WINDOWS = ("sliding", "neighborhood", "block")


def pair(v: Union[int, Sequence[int]]) -> Pair:
    """An int or an ``(h, w)`` sequence as an ``(h, w)`` tuple."""
    if isinstance(v, int):
        return (v, v)
    h, w = v
    return (int(h), int(w))


def resolve_padding(
    padding: Union[int, str, Sequence[int]],
    kernel: Union[int, Sequence[int]],
    dilation: Union[int, Sequence[int]] = 1,
) -> Pad:
    """Public-API padding -> ``((top, bottom), (left, right))``.

    ``"same"``: total ``d*(K-1)`` per axis, ``total // 2`` at the beginning,
    the extra one at the end (as PyTorch). ``"valid"``: no padding.
    """
    k, d = pair(kernel), pair(dilation)
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        out = []
        for ki, di in zip(k, d):
            total = di * (ki - 1)
            out.append((total // 2, total - total // 2))
        return (out[0], out[1])
    ph, pw = pair(padding)  # type: ignore[arg-type]
    return ((ph, ph), (pw, pw))


def oracle_args(
    kernel: Union[int, Sequence[int]],
    stride: Union[int, Sequence[int]] = 1,
    padding: Union[int, str, Sequence[int]] = 0,
    dilation: Union[int, Sequence[int]] = 1,
    window: str = "sliding",
) -> dict[str, Any]:
    """Keyword arguments for the oracle functions from public-API arguments."""
    return {
        "stride": pair(stride),
        "pad": resolve_padding(padding, kernel, dilation),
        "dilation": pair(dilation),
        "window": window,
    }


def output_size(L: int, K: int, s: int, pad: Pair, d: int, window: str) -> int:
    """Output length along one axis (DESIGN section 3)."""
    if window == "sliding":
        return (L + pad[0] + pad[1] - d * (K - 1) - 1) // s + 1
    if window in ("neighborhood", "block"):
        return L
    raise ValueError(window)


def window_index(
    o: int, k: int, L: int, K: int, s: int, p_begin: int, d: int, window: str
) -> Optional[int]:
    """Input index read by output ``o`` at tap ``k``; ``None`` if outside the image."""
    if window == "sliding":
        i = o * s - p_begin + k * d
    elif window == "neighborhood":
        r = o % d
        Lr = -(-(L - r) // d)  # ceil((L - r) / d)
        start = r + d * min(max(o // d - K // 2, 0), Lr - K)
        i = start + k * d
    elif window == "block":
        i = (o // K) * K + k
    else:
        raise ValueError(window)
    return i if 0 <= i < L else None


def _np(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def _taps(
    L: int, Lo: int, K: int, s: int, p_begin: int, d: int, window: str
) -> list[tuple[int, int, int]]:
    """All ``(o, k, i)`` with ``i = i(o, k)`` inside the image, along one axis."""
    out = []
    for o in range(Lo):
        for k in range(K):
            i = window_index(o, k, L, K, s, p_begin, d, window)
            if i is not None:
                out.append((o, k, i))
    return out


def _check_window(L: int, K: int, d: int, window: str) -> None:
    if window == "neighborhood":
        assert K * d <= L, f"neighborhood needs L >= K*d, got L={L}, K={K}, d={d}"
    if window == "block":
        assert L % K == 0, f"block needs L % K == 0, got L={L}, K={K}"


def _geometry(
    in_size: Pair, kernel: Pair, stride: Pair, pad: Pad, dilation: Pair, window: str
) -> tuple[Pair, list[list[tuple[int, int, int]]]]:
    """Output size and per-axis tap lists."""
    sizes, taps = [], []
    for ax in range(2):
        L, K, s, p, d = in_size[ax], kernel[ax], stride[ax], pad[ax], dilation[ax]
        _check_window(L, K, d, window)
        Lo = output_size(L, K, s, p, d, window)
        assert Lo >= 1, f"empty output along axis {ax}"
        sizes.append(Lo)
        taps.append(_taps(L, Lo, K, s, p[0], d, window))
    return (sizes[0], sizes[1]), taps


def _per_sample_channel(w: np.ndarray, N: int, C: int, out_size: Pair) -> np.ndarray:
    """Broadcast a 6-D weight to ``(N, C, Kh, Kw, Hw, Ww)`` (batch and channels only)."""
    Nw, Cw, _, _, Hw, Ww = w.shape
    assert Nw in (1, N), f"Nw={Nw} not in (1, {N})"
    assert Cw >= 1 and C % Cw == 0, f"Cw={Cw} does not divide C={C}"
    assert Hw in (1, out_size[0]), f"Hw={Hw} not in (1, {out_size[0]})"
    assert Ww in (1, out_size[1]), f"Ww={Ww} not in (1, {out_size[1]})"
    group = [c // (C // Cw) for c in range(C)]
    wc = w[:, group]
    return np.broadcast_to(wc, (N, C) + wc.shape[2:])


def oracle_conn(
    x: Any,
    w: Any,
    bias: Any = None,
    stride: Pair = (1, 1),
    pad: Pad = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
    window: str = "sliding",
) -> torch.Tensor:
    """``y[n,c,h,w] = bias[c] + sum_k W[n',g(c),kh,kw,h',w'] x[n,c,ih,iw]``."""
    x, w = _np(x), _np(w)
    N, C, H, W = x.shape
    kernel = (w.shape[2], w.shape[3])
    (Ho, Wo), (th, tw) = _geometry((H, W), kernel, stride, pad, dilation, window)
    wc = _per_sample_channel(w, N, C, (Ho, Wo))
    Hw, Ww = w.shape[4], w.shape[5]
    y = np.zeros((N, C, Ho, Wo))
    for ho, kh, ih in th:
        for wo, kw, iw in tw:
            wv = wc[:, :, kh, kw, ho if Hw == Ho else 0, wo if Ww == Wo else 0]
            y[:, :, ho, wo] += wv * x[:, :, ih, iw]
    if bias is not None:
        y += _np(bias)[None, :, None, None]
    return torch.from_numpy(y)


def oracle_conn_transpose(
    g: Any,
    w: Any,
    input_size: Sequence[int],
    stride: Pair = (1, 1),
    pad: Pad = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
    window: str = "sliding",
) -> torch.Tensor:
    """``xbar[i] = sum_{o,k : i(o,k) = i} W[o,k] g[o]``."""
    g, w = _np(g), _np(w)
    N, C, Ho, Wo = g.shape
    H, W = pair(input_size)
    kernel = (w.shape[2], w.shape[3])
    (Ho2, Wo2), (th, tw) = _geometry((H, W), kernel, stride, pad, dilation, window)
    assert (Ho, Wo) == (Ho2, Wo2), f"g has spatial size {(Ho, Wo)}, window gives {(Ho2, Wo2)}"
    wc = _per_sample_channel(w, N, C, (Ho, Wo))
    Hw, Ww = w.shape[4], w.shape[5]
    out = np.zeros((N, C, H, W))
    for ho, kh, ih in th:
        for wo, kw, iw in tw:
            wv = wc[:, :, kh, kw, ho if Hw == Ho else 0, wo if Ww == Wo else 0]
            out[:, :, ih, iw] += wv * g[:, :, ho, wo]
    return torch.from_numpy(out)


def oracle_corr(
    a: Any,
    b: Any,
    weight_shape: Sequence[int],
    stride: Pair = (1, 1),
    pad: Pad = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
    window: str = "sliding",
) -> torch.Tensor:
    """``What[o,k] = sum a[o] b[i(o,k)]``, summed over every broadcast dim."""
    a, b = _np(a), _np(b)
    N, C, Ho, Wo = a.shape
    Nb, Cb, H, W = b.shape
    assert (Nb, Cb) == (N, C), f"a {a.shape} and b {b.shape} differ in batch/channels"
    Nw, Cw, Kh, Kw, Hw, Ww = (int(v) for v in weight_shape)
    (Ho2, Wo2), (th, tw) = _geometry((H, W), (Kh, Kw), stride, pad, dilation, window)
    assert (Ho, Wo) == (Ho2, Wo2), f"a has spatial size {(Ho, Wo)}, window gives {(Ho2, Wo2)}"
    assert Nw in (1, N) and C % Cw == 0 and Hw in (1, Ho) and Ww in (1, Wo), weight_shape
    full = np.zeros((N, C, Kh, Kw, Ho, Wo))
    for ho, kh, ih in th:
        for wo, kw, iw in tw:
            full[:, :, kh, kw, ho, wo] = a[:, :, ho, wo] * b[:, :, ih, iw]
    if Nw != N:
        full = full.sum(axis=0, keepdims=True)
    full = full.reshape(full.shape[0], Cw, C // Cw, Kh, Kw, Ho, Wo).sum(axis=2)
    if Hw != Ho:
        full = full.sum(axis=4, keepdims=True)
    if Ww != Wo:
        full = full.sum(axis=5, keepdims=True)
    assert full.shape == (Nw, Cw, Kh, Kw, Hw, Ww)
    return torch.from_numpy(np.ascontiguousarray(full))


# Sharing modes: (Nw is N, Cw kind in {"C", "G", "1"}, Hw is Ho, Ww is Wo).
Sharing = tuple[bool, str, bool, bool]
SHARING_MODES: list[Sharing] = [
    (nw, cw, hw, ww)
    for nw in (False, True)
    for cw in ("C", "G", "1")
    for hw in (False, True)
    for ww in (False, True)
]


def sharing_id(mode: Sharing) -> str:
    """Readable test id, e.g. ``Nw=N,Cw=G,Hw=1,Ww=Wo``."""
    nw, cw, hw, ww = mode
    return f"Nw={'N' if nw else 1},Cw={cw},Hw={'Ho' if hw else 1},Ww={'Wo' if ww else 1}"


def weight_shape(
    mode: Sharing, N: int, C: int, G: int, kernel: Pair, out_size: Pair
) -> tuple[int, int, int, int, int, int]:
    """The 6-D weight shape of a sharing mode."""
    nw, cw, hw, ww = mode
    Cw = {"C": C, "G": G, "1": 1}[cw]
    return (
        N if nw else 1,
        Cw,
        kernel[0],
        kernel[1],
        out_size[0] if hw else 1,
        out_size[1] if ww else 1,
    )


def out_hw(
    in_size: Pair, kernel: Pair, stride: Pair, pad: Pad, dilation: Pair, window: str
) -> Pair:
    """Output ``(Ho, Wo)`` for resolved arguments."""
    return (
        output_size(in_size[0], kernel[0], stride[0], pad[0], dilation[0], window),
        output_size(in_size[1], kernel[1], stride[1], pad[1], dilation[1], window),
    )
