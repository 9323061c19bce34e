"""perfmodel/targets.py: which rows meet the depth-wise kernels' targets, on made-up
records whose ratios are known by construction; perfmodel/readme.py: README's tables
quote the committed model table."""

from __future__ import annotations

import json

import pytest

from perfmodel import targets


def _rec(case: str, low: float, high: float, roof: float, *, backend: str = "cuda",
         direction: str = "fwd", dtype: str = "float16", suite: str = "paper") -> dict:
    return {"suite": suite, "mode": case.split()[0], "case": case, "dtype": dtype,
            "layout": "nchw", "direction": direction, "backend": backend,
            "h200": {"low_us": low, "high_us": high, "roofline_us": roof}}


def _by_case(verdicts: list[targets.Verdict]) -> dict[tuple, targets.Verdict]:
    return {(v.case, v.direction, v.dtype): v for v in verdicts}


def test_status_floor_and_best_backend() -> None:
    rows = [
        _rec("dw 64x96x56x56 k7", 15.0, 16.0, 10.0),                       # 1.5-1.6: met
        _rec("dw 64x96x56x56 k7", 30.0, 40.0, 10.0, backend="triton"),     # slower: ignored
        _rec("dw 64x96x56x56 k7", 15.0, 17.0, 10.0, direction="input-grad"),  # low end only
        _rec("dw 64x96x56x56 k7", 26.0, 30.0, 10.0, direction="weight-grad"),  # missed (2.5)
        _rec("dw 64x768x7x7 k7", 1.0, 1.2, 10.0, backend="torch"),         # peers: not ours
        _rec("dw 64x384x32x32 k31", 25.0, 29.0, 10.0, suite="large-kernel"),  # met (3x)
        _rec("dw 64x384x32x32 k31", 25.0, 29.0, 10.0, suite="large-kernel", dtype="float32"),
        _rec("shared 64x384x14x14 k7 g32", 16.0, 20.0, 10.0),              # missed (1.5)
        _rec("dw 64x1x1x1 k3", 1.0, 1.0, 1.0),                             # no target
    ]
    v = _by_case(targets.evaluate(rows, launch_us=2.0))
    assert set(v) == {("dw 64x96x56x56 k7", "fwd", "float16"),
                      ("dw 64x96x56x56 k7", "input-grad", "float16"),
                      ("dw 64x96x56x56 k7", "weight-grad", "float16"),
                      ("dw 64x384x32x32 k31", "fwd", "float16"),
                      ("shared 64x384x14x14 k7 g32", "fwd", "float16")}
    fwd = v[("dw 64x96x56x56 k7", "fwd", "float16")]
    assert (fwd.status, fwd.backend) == ("met", "cuda")
    assert fwd.low == pytest.approx(1.5) and fwd.high == pytest.approx(1.6)
    assert fwd.floor == pytest.approx(1.2)  # (10 + 2) / 10
    assert v[("dw 64x96x56x56 k7", "input-grad", "float16")].status == "low end"
    assert v[("dw 64x96x56x56 k7", "weight-grad", "float16")].status == "missed"
    assert v[("dw 64x384x32x32 k31", "fwd", "float16")].status == "met"
    assert v[("shared 64x384x14x14 k7 g32", "fwd", "float16")].status == "missed"


def test_dynamic_rows_against_the_static_ones() -> None:
    rows = [_rec("dw 64x96x56x56 k7", 20.0, 30.0, 10.0),
            _rec("dyn-dw 64x96x56x56 k7", 21.0, 32.0, 10.0),                # 1.05-1.07: met
            _rec("dw 64x96x56x56 k7", 20.0, 30.0, 10.0, direction="input-grad"),
            _rec("dyn-dw 64x96x56x56 k7", 21.0, 36.0, 25.0, direction="input-grad"),
            _rec("dyn-dw 64x768x7x7 k7", 5.0, 6.0, 2.0)]                    # no static row
    v = _by_case(targets.evaluate(rows, launch_us=2.0))
    dyn = v[("dyn-dw 64x96x56x56 k7", "fwd", "float16")]
    assert dyn.target == "dynamic vs static" and dyn.status == "met"
    assert dyn.low == pytest.approx(1.05) and dyn.high == pytest.approx(32 / 30)
    ig = v[("dyn-dw 64x96x56x56 k7", "input-grad", "float16")]
    assert ig.status == "low end" and ig.floor == pytest.approx(27 / 20)  # its own roofline
    assert ("dyn-dw 64x768x7x7 k7", "fwd", "float16") not in v


def test_table_lists_summary_and_the_rows_not_met() -> None:
    rows = [_rec("dw 64x96x56x56 k7", 15.0, 16.0, 10.0),
            _rec("dw 64x96x56x56 k7", 26.0, 30.0, 10.0, direction="weight-grad")]
    lines = targets.table(rows, launch_us=2.0)
    assert "| dw 7x7 fwd / input-grad | 1.6x | 1 | 0 | 0 |" in lines
    assert "| dw 7x7 weight-grad | 2.5x | 0 | 0 | 1 |" in lines
    body = [line for line in lines if line.startswith("| dw 7x7 weight-grad | dw")]
    assert body == ["| dw 7x7 weight-grad | dw 64x96x56x56 k7 | float16 | nchw | weight-grad | "
                    "cuda | 2.60–3.00 | 1.20 | missed |"]
    assert targets.table([_rec("dw 64x1x1x1 k3", 1.0, 1.0, 1.0)]) == []


def test_readme_tables_quote_the_committed_model_table() -> None:
    # README's H200 tables are rewritten from perf-model.json (python -m perfmodel.readme):
    # a kernel change that re-runs the model and not the README fails here
    from perfmodel import readme

    text = readme.README.read_text()
    records = json.loads(readme.TABLE.read_text())["records"]
    new, changes = readme.refresh(text, records)
    assert changes == [], "\n".join(changes[:10])
    # the check can fail: a cell of the float32 table edited by hand is found and restored
    row = next(line for line in text.split("\n")
               if line.startswith("| depth-wise, stage 4 (7x7) | NCHW | fwd |"))
    stale = row.split("|")
    stale[5] = " 1.0–2.0 (99–99%) "
    fixed, changes = readme.refresh(text.replace(row, "|".join(stale)), records)
    assert len(changes) == 1 and fixed == text
    assert readme.case_of("dynamic depth-wise, stage 1") == "dyn-dw 64x96x56x56 k7"
    assert readme.case_of("involution (32 groups), stage 3") == "shared 64x384x14x14 k7 g32"
    assert readme.case_of("whole unfused attention") is None
