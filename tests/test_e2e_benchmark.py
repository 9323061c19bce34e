"""Smoke test of the e2e benchmark suite (``python -m benchmarks --suite e2e --quick``).

On the CPU ``--quick`` runs the tiny configurations; here one model, both
impls (localconn and the original layers), inference and a training step.
The numbers mean nothing on a CPU; the test checks that the suite runs, that
the two impls agreed (a disagreement is a ``wrong: ...`` status) and that the
results have the documented schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import e2e  # noqa: E402


def test_e2e_quick_runs_and_writes_results(tmp_path: Path, capsys) -> None:
    argv = ["--suite", "e2e", "--quick", "--device", "cpu", "--case", "dynamic_dwnet_tiny",
            "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    records = data["records"]
    assert {(r["impl"], r["mode"]) for r in records} == {
        (impl, mode) for impl in e2e.IMPLS for mode in e2e.MODES
    }
    for r in records:
        assert set(r) == set(e2e.FIELDS)
        assert r["status"] == "ok", r
        assert r["images_per_s"] > 0 and r["ms_p20"] <= r["ms"] <= r["ms_p80"]
        assert (r["model"], r["batch"], r["img_size"]) == ("dynamic_dwnet_tiny", 2, 64)
        assert r["speedup_vs_torch"] is not None
    assert len(data["summary"]) == 2
    assert "Speed-up, best layout each side" in (tmp_path / "results.md").read_text()
    assert "dynamic_dwnet_tiny" in capsys.readouterr().out


def test_e2e_attention_models_have_no_torch_impl(tmp_path: Path) -> None:
    argv = ["--suite", "e2e", "--quick", "--device", "cpu", "--case", "nat_tiny",
            "--direction", "fwd", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    status = {r["impl"]: r["status"] for r in records}
    assert status["localconn"] == "ok"
    assert status["torch"].startswith("unsupported:")


def test_e2e_must_run_alone() -> None:
    try:
        cli.main(["--suite", "e2e,cpu", "--list"])
    except SystemExit as e:
        assert "on its own" in str(e)
    else:
        raise AssertionError("mixing e2e with kernel suites must be refused")
