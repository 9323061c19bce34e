"""The kernel benchmark's record of auto's choices (results.json env, results.md section)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import report, runner  # noqa: E402
from localconn import autoselect  # noqa: E402


def test_auto_choices_reach_the_results(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = "conn2d static-spatial float16 nchw (64, 96, 56, 56) sliding k7x7 s1x1 p3/3/3/3 d1x1"
    monkeypatch.setattr(
        autoselect, "choices", lambda: {problem: ("cuda", {"triton": 2.5e-5, "cuda": 1.25e-5})}
    )
    (choice,) = runner.auto_choices()
    assert choice["problem"] == problem and choice["backend"] == "cuda"
    assert choice["us"] == pytest.approx({"triton": 25.0, "cuda": 12.5})
    md = report.format_markdown({"device": "test", "auto_choices": [choice]}, [])
    assert "## auto's choices" in md
    assert f"| {problem} | cuda | triton 25, cuda 12.5 |" in md
    assert "**auto_choices**" not in md  # not among the environment bullets


def test_no_choices_no_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autoselect, "choices", lambda: {})
    assert runner.auto_choices() == []
    assert "auto's choices" not in report.format_markdown({"device": "test"}, [])
