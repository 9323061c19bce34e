"""Random configurations (hypothesis) of all three primitives against the oracle.

Only valid configurations are drawn: sliding outputs are non-empty and
``"same"`` padding comes with stride 1; neighborhood has ``L >= K*d``; block
has ``L % K == 0`` and default stride/padding/dilation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import (
    SHARING_MODES,
    Sharing,
    oracle_args,
    oracle_conn,
    oracle_conn_transpose,
    oracle_corr,
    out_hw,
    weight_shape,
)
from tolerances import assert_close

import localconn

MAX_L = 9


@dataclass
class Config:
    """A drawn configuration: public-API kwargs plus everything the oracle needs."""

    window: str
    kernel: tuple[int, int]
    in_size: tuple[int, int]
    kwargs: dict[str, Any]
    oracle: dict[str, Any]
    N: int
    C: int
    G: int
    mode: Sharing
    bias: bool
    seed: int

    def out_size(self) -> tuple[int, int]:
        """Output ``(Ho, Wo)``."""
        o = self.oracle
        return out_hw(self.in_size, self.kernel, o["stride"], o["pad"], o["dilation"], self.window)


def _axis_or_pair(draw: st.DrawFn, values: tuple[int, int]) -> Any:
    """An int when both axes agree (sometimes), else an (h, w) pair."""
    if values[0] == values[1] and draw(st.booleans()):
        return values[0]
    return values


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """A valid configuration for any window."""
    window = draw(st.sampled_from(["sliding", "neighborhood", "block"]))
    kernel, in_size, kwargs = [], [], {}
    oracle: dict[str, Any]
    if window == "sliding":
        strides, dils, pads_kind = [], [], draw(st.sampled_from(["int", "pair", "same", "valid"]))
        for _ in range(2):
            k = draw(st.integers(1, 5))
            d = draw(st.integers(1, max(1, min(3, (MAX_L - 1) // max(k - 1, 1)))))
            kernel.append(k)
            dils.append(d)
            strides.append(1 if pads_kind == "same" else draw(st.integers(1, 3)))
        if pads_kind == "int":
            p = draw(st.integers(0, 2))
            padding: Any = p
            pads = [(p, p), (p, p)]
        elif pads_kind == "pair":
            ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            padding, pads = (ph, pw), [(ph, ph), (pw, pw)]
        else:
            padding = pads_kind
            oa = oracle_args(tuple(kernel), 1, pads_kind, tuple(dils))
            pads = list(oa["pad"])
        for ax in range(2):
            min_l = max(1, dils[ax] * (kernel[ax] - 1) + 1 - sum(pads[ax]))
            in_size.append(draw(st.integers(min_l, MAX_L)))
        kwargs = {
            "stride": _axis_or_pair(draw, tuple(strides)),
            "padding": padding,
            "dilation": _axis_or_pair(draw, tuple(dils)),
        }
        oracle = oracle_args(tuple(kernel), kwargs["stride"], padding, kwargs["dilation"])
    elif window == "neighborhood":
        dils = []
        for _ in range(2):
            k = draw(st.integers(1, 5))
            d = draw(st.integers(1, MAX_L // k))
            kernel.append(k)
            dils.append(d)
            in_size.append(draw(st.integers(k * d, MAX_L)))
        dilation = _axis_or_pair(draw, tuple(dils))
        if dilation != 1 or draw(st.booleans()):
            kwargs = {"dilation": dilation}
        oracle = oracle_args(tuple(kernel), 1, 0, dilation, window)
    else:
        for _ in range(2):
            k = draw(st.integers(1, 4))
            kernel.append(k)
            in_size.append(k * draw(st.integers(1, MAX_L // k)))
        oracle = oracle_args(tuple(kernel), window=window)
    kwargs["window"] = window
    oracle["window"] = window
    G = draw(st.sampled_from([1, 2, 3]))
    C = G * draw(st.integers(1, 2))
    return Config(
        window=window,
        kernel=(kernel[0], kernel[1]),
        in_size=(in_size[0], in_size[1]),
        kwargs=kwargs,
        oracle=oracle,
        N=draw(st.integers(1, 2)),
        C=C,
        G=G,
        mode=draw(st.sampled_from(SHARING_MODES)),
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


SETTINGS = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(cfg=configs())
def test_random_configurations(cfg: Config) -> None:
    """conn, conn_transpose and corr vs the oracle on a random valid configuration."""
    g = torch.Generator().manual_seed(cfg.seed)
    Ho, Wo = cfg.out_size()
    assert Ho >= 1 and Wo >= 1
    shape = weight_shape(cfg.mode, cfg.N, cfg.C, cfg.G, cfg.kernel, (Ho, Wo))
    x = torch.randn((cfg.N, cfg.C) + cfg.in_size, generator=g, dtype=torch.float64)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    go = torch.randn((cfg.N, cfg.C, Ho, Wo), generator=g, dtype=torch.float64)
    b: Optional[torch.Tensor] = (
        torch.randn((cfg.C,), generator=g, dtype=torch.float64) if cfg.bias else None
    )

    y = localconn.local_conn2d(x, w, b, **cfg.kwargs)
    assert_close(y, oracle_conn(x, w, b, **cfg.oracle), what=f"local_conn2d {cfg}")
    xt = localconn.local_conn2d_transpose(go, w, cfg.in_size, **cfg.kwargs)
    assert_close(xt, oracle_conn_transpose(go, w, cfg.in_size, **cfg.oracle),
                 what=f"local_conn2d_transpose {cfg}")
    wc = localconn.local_corr2d(go, x, shape, **cfg.kwargs)
    assert_close(wc, oracle_corr(go, x, shape, **cfg.oracle), what=f"local_corr2d {cfg}")
