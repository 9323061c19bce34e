"""The ``attention`` suite's baselines agree with localconn on both of its windows.

The benchmark compares every provider with the reference before timing it, but only on
the GPU suites; here the same providers run on a small CPU case of each window
(neighborhood: NAT; block: Swin's 7x7 windows), against an independent windowed
attention for the block case (partition into blocks, dense attention per block).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from tolerances import assert_close

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import flex, providers  # noqa: E402
from benchmarks.cases import SUITES, Case  # noqa: E402
from benchmarks.workload import Setting, localconn_op  # noqa: E402


def _swin(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, K: int) -> torch.Tensor:
    """Dense attention inside each K x K block, by partitioning (Swin's window attention)."""
    N, C, H, W = q.shape
    d = C // heads

    def part(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(N, heads, d, H // K, K, W // K, K)
        return t.permute(0, 1, 3, 5, 4, 6, 2).reshape(N, heads, -1, K * K, d)

    a = (part(q) @ part(k).transpose(-1, -2) * d**-0.5).softmax(-1)
    y = (a @ part(v)).reshape(N, heads, H // K, W // K, K, K, d)
    return y.permute(0, 1, 6, 2, 4, 3, 5).reshape(N, C, H, W)


def test_the_suite_has_nat_and_swin_stage_one() -> None:
    names = [c.name for c in SUITES["attention"]]
    assert names == ["attention 64x96x56x56 k7 g3", "attention 64x96x56x56 k7 g3 block"]


@pytest.mark.parametrize("window", ["neighborhood", "block"])
def test_baselines_agree_with_localconn(window: str) -> None:
    case = Case("attention", "attention", (2, 16, 14, 14), 7, 0, window, 2)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(case.shape, generator=gen) for _ in range(3))
    ref = localconn_op(case, "reference")(q, k, v)
    if window == "block":
        assert_close(ref, _swin(q, k, v, 2, 7), what="reference vs Swin partition")
    setting = Setting(torch.device("cpu"), torch.float32, "nchw")
    assert_close(providers._unfold(case, setting)(q, k, v), ref, what=f"unfold {window}")
    if flex.flex_unavailable() is None:
        with warnings.catch_warnings():  # (uncompiled FlexAttention warns that it is slow)
            warnings.simplefilter("ignore")
            got = flex.flex_attention_op(case, torch.device("cpu"), compile=False)(q, k, v)
        assert_close(got, ref, what=f"flex {window}")
    if window == "block":  # the naive kernel has no block window: it says so
        assert "unsupported" in (providers._naive_check(case, setting) or "")
