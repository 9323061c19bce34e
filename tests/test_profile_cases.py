"""The GPU check's Nsight Compute items (benchmarks/profile_cases.py) name real cases and run.

On the CPU each item runs at a tiny size on the reference backend (the fused attention
items through Triton's interpreter) and must agree with the case's float64 result, so a
renamed case or a broken call fails here and not in a scarce GPU call.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from tolerances import assert_close  # noqa: E402

from benchmarks import profile_cases  # noqa: E402
from benchmarks.profile_cases import ITEMS, Item, call_of  # noqa: E402


@pytest.mark.parametrize("item", [i for i in ITEMS if i.backend != "fused"], ids=lambda i: i.label)
def test_items_run_and_match_float64(item: Item) -> None:
    call = call_of(Item(item.suite, item.case, "float32", item.layout, "reference",
                        item.direction), torch.device("cpu"), small=True)
    got = call()
    want = call.fn(*(a.double() for a in call.args))
    assert torch.isfinite(got).all()
    assert_close(got, want.float(), what=item.label)


def test_fused_items_run_through_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    for item in (i for i in ITEMS if i.backend == "fused"):
        small = Item(item.suite, item.case, "float32", item.layout, "fused", item.direction)
        out = call_of(small, torch.device("cpu"), small=True)()
        assert out.dtype == torch.float32 and torch.isfinite(out).all(), item.label


def test_unknown_cases_and_directions_are_refused() -> None:
    with pytest.raises(ValueError, match="no case named"):
        call_of(Item("paper", "dw 1x2x3x4 k7", "float32", "nchw", "reference", "fwd"),
                torch.device("cpu"), small=True)
    fused = next(i for i in ITEMS if i.backend == "fused")
    with pytest.raises(ValueError, match="only the fused forward"):
        call_of(Item(fused.suite, fused.case, "float32", fused.layout, "fused", "weight-grad"),
                torch.device("cpu"), small=True)


def test_dry_run_runs_every_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    seen: list[str] = []
    monkeypatch.setattr(profile_cases, "run",
                        lambda items, device, small, profile: seen.extend(i.label for i in items))
    assert profile_cases.main(["--dry-run"]) == 0
    assert len(seen) == len(ITEMS)
