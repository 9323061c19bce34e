"""The three public primitives against the float64 oracle on a fixed grid.

Grid: every window x every sharing mode (Nw, Cw, Hw, Ww) x a set of
stride/padding/dilation/kernel configurations, in float64; then bias,
strided weight views, low-precision dtypes and non-contiguous inputs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Union

import pytest
import torch
from oracle import (
    SHARING_MODES,
    Pair,
    Sharing,
    oracle_args,
    oracle_conn,
    oracle_conn_transpose,
    oracle_corr,
    out_hw,
    pair,
    sharing_id,
    weight_shape,
    window_index,
)
from tolerances import assert_close

import localconn

# PyTorch's own note on conv2d(padding="same") with even kernels, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
N, C, G = 2, 6, 3


@dataclass(frozen=True)
class Case:
    """One window configuration (public-API arguments) and input size."""

    window: str
    kernel: Pair
    in_size: Pair
    stride: Union[int, Pair] = 1
    padding: Union[int, str, Pair] = 0
    dilation: Union[int, Pair] = 1

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the public ops (only those the window takes)."""
        kw: dict[str, Any] = {"window": self.window}
        if self.window == "sliding":
            kw.update(stride=self.stride, padding=self.padding, dilation=self.dilation)
        elif self.window == "neighborhood":
            kw.update(dilation=self.dilation)
        return kw

    def oracle_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the oracle."""
        return oracle_args(self.kernel, self.stride, self.padding, self.dilation, self.window)

    def out_size(self) -> Pair:
        """Output ``(Ho, Wo)``."""
        o = self.oracle_kwargs()
        return out_hw(self.in_size, self.kernel, o["stride"], o["pad"], o["dilation"], self.window)

    def id(self) -> str:
        """Readable test id."""
        (kh, kw), (h, w) = self.kernel, self.in_size
        s = f"{self.window[:5]}-k{kh}x{kw}-in{h}x{w}"
        if self.window == "sliding":
            s += f"-s{pair(self.stride)}-p{self.padding}-d{pair(self.dilation)}"
        elif self.window == "neighborhood":
            s += f"-d{pair(self.dilation)}"
        return s.replace(" ", "")


CASES: list[Case] = [
    # sliding (convolution)
    Case("sliding", (1, 1), (5, 6)),
    Case("sliding", (3, 3), (7, 8), 1, "same", 1),
    Case("sliding", (3, 3), (8, 7), 2, 1, 1),
    Case("sliding", (2, 4), (6, 7), 1, "same", 1),  # even: extra padding at the end
    Case("sliding", (5, 3), (9, 8), (2, 3), (2, 1), 1),
    Case("sliding", (3, 3), (7, 7), 1, "same", 2),
    Case("sliding", (3, 2), (9, 8), 3, (1, 0), (2, 1)),
    Case("sliding", (2, 4), (5, 9), 1, "valid", (1, 2)),
    Case("sliding", (3, 3), (6, 5), (1, 2), (0, 2), 1),
    Case("sliding", (4, 2), (9, 6), 2, "valid", 2),
    Case("sliding", (2, 3), (5, 6), 1, "same", (3, 2)),
    # neighborhood (window shifted inside the image)
    Case("neighborhood", (3, 3), (7, 8)),
    Case("neighborhood", (2, 4), (6, 7)),
    Case("neighborhood", (3, 2), (7, 9), dilation=2),
    Case("neighborhood", (1, 1), (4, 5)),
    Case("neighborhood", (5, 3), (6, 7), dilation=(1, 2)),
    Case("neighborhood", (4, 4), (9, 8), dilation=2),
    Case("neighborhood", (3, 3), (9, 9), dilation=3),
    Case("neighborhood", (4, 5), (4, 5)),  # window = whole image
    # block (Swin windows)
    Case("block", (1, 1), (3, 4)),
    Case("block", (3, 3), (9, 6)),
    Case("block", (2, 4), (6, 8)),
    Case("block", (3, 2), (9, 8)),
    Case("block", (4, 6), (4, 6)),
]
CASE_IDS = [c.id() for c in CASES]
MODE_IDS = [sharing_id(m) for m in SHARING_MODES]


def gen(*key: Any) -> torch.Generator:
    """A CPU generator seeded from ``key`` (reproducible, distinct per test)."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def randn(shape: tuple[int, ...], g: torch.Generator, dtype: torch.dtype = torch.float64,
          device: str = "cpu") -> torch.Tensor:
    """Standard normal data (never all zeros), made in float64 then cast."""
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def make(case: Case, mode: Sharing, key: Any, dtype: torch.dtype = torch.float64,
         device: str = "cpu", n: int = N, c: int = C, grp: int = G
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input ``x``, weight ``w`` and output-shaped ``g`` for a case."""
    g = gen(key)
    Ho, Wo = case.out_size()
    x = randn((n, c) + case.in_size, g, dtype, device)
    w = randn(weight_shape(mode, n, c, grp, case.kernel, (Ho, Wo)), g, dtype, device)
    go = randn((n, c, Ho, Wo), g, dtype, device)
    return x, w, go


# --------------------------------------------------------------------- oracle self-checks


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_oracle_adjoint(case: Case) -> None:
    """Oracle primitives are adjoint: <conn(x,W),g> = <x,conn_T(g,W)> = <W,corr(g,x)>."""
    x, w, go = make(case, (True, "C", True, True), ("adj", case))
    o = case.oracle_kwargs()
    y = oracle_conn(x, w, None, **o)
    xt = oracle_conn_transpose(go, w, case.in_size, **o)
    wc = oracle_corr(go, x, w.shape, **o)
    lhs = float((y * go).sum())
    assert abs(lhs - float((x * xt).sum())) < 1e-9 * (1 + abs(lhs))
    assert abs(lhs - float((w * wc).sum())) < 1e-9 * (1 + abs(lhs))


def test_oracle_windows_by_hand() -> None:
    """Window index tables worked out by hand from DESIGN section 3."""
    nb = [[window_index(o, k, 7, 2, 1, 0, 1, "neighborhood") for k in range(2)] for o in range(7)]
    assert nb == [[0, 1], [0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]
    nb = [[window_index(o, k, 9, 3, 1, 0, 2, "neighborhood") for k in range(3)] for o in range(9)]
    assert nb[0] == [0, 2, 4] and nb[1] == [1, 3, 5] and nb[4] == [2, 4, 6]
    assert nb[7] == [3, 5, 7] and nb[8] == [4, 6, 8]
    bl = [[window_index(o, k, 6, 3, 1, 0, 1, "block") for k in range(3)] for o in range(6)]
    assert bl == [[0, 1, 2]] * 3 + [[3, 4, 5]] * 3
    sl = [window_index(0, k, 5, 3, 2, 1, 2, "sliding") for k in range(3)]
    assert sl == [None, 1, 3]


def test_oracle_matches_conv2d() -> None:
    """The oracle agrees with depth-wise F.conv2d (guards the oracle itself)."""
    g = gen("oracle-conv")
    x = randn((2, 3, 7, 8), g)
    w = randn((3, 1, 2, 3), g)
    for s, p, d in [(1, "same", 1), (2, 1, 1), ((1, 2), (0, 1), (2, 1)), (1, "same", 2)]:
        ref = torch.nn.functional.conv2d(x, w, stride=s, padding=p, dilation=d, groups=3)
        got = oracle_conn(x, w.view(1, 3, 2, 3, 1, 1), None, **oracle_args((2, 3), s, p, d))
        assert_close(got, ref, torch.float64, what=f"oracle vs conv2d s={s} p={p} d={d}")


# --------------------------------------------------------------------- the float64 grid


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", SHARING_MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_conn(case: Case, mode: Sharing, device: str) -> None:
    """local_conn2d == oracle."""
    x, w, _ = make(case, mode, ("conn", case, mode), device=device)
    y = localconn.local_conn2d(x, w, **case.kwargs())
    assert y.dtype == x.dtype and y.device == x.device
    assert_close(y, oracle_conn(x, w, None, **case.oracle_kwargs()), what="local_conn2d")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", SHARING_MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_conn_transpose(case: Case, mode: Sharing, device: str) -> None:
    """local_conn2d_transpose == oracle."""
    _, w, go = make(case, mode, ("convT", case, mode), device=device)
    xt = localconn.local_conn2d_transpose(go, w, case.in_size, **case.kwargs())
    ref = oracle_conn_transpose(go, w, case.in_size, **case.oracle_kwargs())
    assert_close(xt, ref, what="local_conn2d_transpose")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", SHARING_MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_corr(case: Case, mode: Sharing, device: str) -> None:
    """local_corr2d == oracle (sums over every broadcast dim)."""
    x, w, go = make(case, mode, ("corr", case, mode), device=device)
    got = localconn.local_corr2d(go, x, tuple(w.shape), **case.kwargs())
    assert_close(got, oracle_corr(go, x, w.shape, **case.oracle_kwargs()), what="local_corr2d")


# --------------------------------------------------------------------- bias, weight views


BIAS_MODES = [(False, "C", False, False), (True, "G", True, True), (False, "1", True, False)]


@pytest.mark.parametrize("mode", BIAS_MODES, ids=[sharing_id(m) for m in BIAS_MODES])
@pytest.mark.parametrize("case", CASES[::2], ids=CASE_IDS[::2])
def test_conn_bias(case: Case, mode: Sharing) -> None:
    """local_conn2d with a bias == oracle with the bias."""
    x, w, _ = make(case, mode, ("bias", case, mode))
    b = randn((C,), gen("bias-b", case, mode))
    y = localconn.local_conn2d(x, w, b, **case.kwargs())
    assert_close(y, oracle_conn(x, w, b, **case.oracle_kwargs()), what="local_conn2d + bias")
    y = localconn.local_conn2d(x, w, bias=b, **case.kwargs())
    assert_close(y, oracle_conn(x, w, b, **case.oracle_kwargs()), what="local_conn2d(bias=)")


VIEW_CASES = [CASES[1], CASES[4], CASES[6], CASES[12], CASES[13], CASES[20], CASES[21]]


@pytest.mark.parametrize("case", VIEW_CASES, ids=[c.id() for c in VIEW_CASES])
def test_attention_layout_weight(case: Case) -> None:
    """An attention tensor (N, G, Ho, Wo, Kh, Kw) passed as .permute(0, 1, 4, 5, 2, 3)."""
    g = gen("attn-view", case)
    Ho, Wo = case.out_size()
    x = randn((N, C) + case.in_size, g)
    go = randn((N, C, Ho, Wo), g)
    attn = randn((N, G, Ho, Wo) + case.kernel, g)
    w = attn.permute(0, 1, 4, 5, 2, 3)
    assert not w.is_contiguous()
    o = case.oracle_kwargs()
    y = localconn.local_conn2d(x, w, **case.kwargs())
    assert_close(y, oracle_conn(x, w, None, **o), what="local_conn2d(permuted weight)")
    xt = localconn.local_conn2d_transpose(go, w, case.in_size, **case.kwargs())
    assert_close(xt, oracle_conn_transpose(go, w, case.in_size, **o),
                 what="local_conn2d_transpose(permuted weight)")


@pytest.mark.parametrize("case", VIEW_CASES, ids=[c.id() for c in VIEW_CASES])
def test_expanded_and_strided_weight(case: Case) -> None:
    """Stride-0 expand()ed weights and other strided views give the oracle's result."""
    g = gen("expand", case)
    Ho, Wo = case.out_size()
    Kh, Kw = case.kernel
    x = randn((N, C) + case.in_size, g)
    go = randn((N, C, Ho, Wo), g)
    o = case.oracle_kwargs()
    views = {
        "expand-all": randn((1, C, Kh, Kw, 1, 1), g).expand(N, C, Kh, Kw, Ho, Wo),
        "expand-channel": randn((N, 1, Kh, Kw, Ho, 1), g).expand(N, C, Kh, Kw, Ho, Wo),
        "expand-batch": randn((1, G, Kh, Kw, Ho, Wo), g).expand(N, G, Kh, Kw, Ho, Wo),
        "sliced": randn((N, C, Kh, Kw, Ho, 2 * Wo), g)[..., ::2],
        "spatial-major": randn((Ho, Wo, 1, C, Kh, Kw), g).permute(2, 3, 4, 5, 0, 1),
    }
    for name, w in views.items():
        y = localconn.local_conn2d(x, w, **case.kwargs())
        assert_close(y, oracle_conn(x, w, None, **o), what=f"local_conn2d({name} weight)")
        xt = localconn.local_conn2d_transpose(go, w, case.in_size, **case.kwargs())
        assert_close(xt, oracle_conn_transpose(go, w, case.in_size, **o),
                     what=f"local_conn2d_transpose({name} weight)")


@pytest.mark.parametrize("case", VIEW_CASES, ids=[c.id() for c in VIEW_CASES])
def test_noncontiguous_inputs(case: Case) -> None:
    """channels_last and sliced inputs give the oracle's result (channels_last stays so)."""
    g = gen("noncontig", case)
    Ho, Wo = case.out_size()
    mode: Sharing = (True, "G", True, False)
    x = randn((N, C) + case.in_size, g).contiguous(memory_format=torch.channels_last)
    go = randn((N, 2 * C, Ho, Wo), g)[:, ::2]
    w = randn(weight_shape(mode, N, C, G, case.kernel, (Ho, Wo)), g)
    o = case.oracle_kwargs()
    y = localconn.local_conn2d(x, w, **case.kwargs())
    assert_close(y, oracle_conn(x, w, None, **o), what="local_conn2d(channels_last x)")
    assert y.is_contiguous(memory_format=torch.channels_last), "channels_last in, not out"
    xt = localconn.local_conn2d_transpose(go, w, case.in_size, **case.kwargs())
    assert_close(xt, oracle_conn_transpose(go, w, case.in_size, **o),
                 what="local_conn2d_transpose(sliced g)")
    wc = localconn.local_corr2d(go, x, tuple(w.shape), **case.kwargs())
    assert_close(wc, oracle_corr(go, x, w.shape, **o),
                 what="local_corr2d(sliced a, channels_last b)")


# --------------------------------------------------------------------- low precision

LOW_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DTYPE_MODES = [(False, "C", False, False), (True, "G", True, True), (True, "1", False, True)]
DTYPE_CASES = [CASES[1], CASES[3], CASES[6], CASES[11], CASES[13], CASES[21]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", LOW_DTYPES, ids=str)
@pytest.mark.parametrize("mode", DTYPE_MODES, ids=[sharing_id(m) for m in DTYPE_MODES])
@pytest.mark.parametrize("case", DTYPE_CASES, ids=[c.id() for c in DTYPE_CASES])
def test_low_precision(case: Case, mode: Sharing, dtype: torch.dtype, device: str) -> None:
    """float32/16/bf16 results vs the oracle on the same rounded inputs."""
    x, w, go = make(case, mode, ("lowp", case, mode, str(dtype)), dtype=dtype, device=device)
    b = randn((C,), gen("lowp-b", case), dtype, device)
    o = case.oracle_kwargs()
    y = localconn.local_conn2d(x, w, b, **case.kwargs())
    assert y.dtype == dtype
    assert_close(y, oracle_conn(x, w, b, **o), dtype, what="local_conn2d")
    xt = localconn.local_conn2d_transpose(go, w, case.in_size, **case.kwargs())
    assert xt.dtype == dtype
    assert_close(xt, oracle_conn_transpose(go, w, case.in_size, **o), dtype,
                 what="local_conn2d_transpose")
    wc = localconn.local_corr2d(go, x, tuple(w.shape), **case.kwargs())
    assert wc.dtype == dtype
    assert_close(wc, oracle_corr(go, x, w.shape, **o), dtype, what="local_corr2d")
