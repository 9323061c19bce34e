"""README's H200 tables from the committed model table, so that they cannot drift.

The README quotes the model's predictions for the depth-wise family (one table for
float16, one for float32; `cuda` and `triton` columns as "low–high (% of roofline)").
They used to be copied by hand, and after kernel changes some cells went stale. This
module rewrites those cells from ``benchmarks/results/model/perf-model.json`` (or, with
``--check``, lists the stale ones and fails: the test suite runs the check).

    python -m perfmodel.readme            # rewrite the cells in README.md
    python -m perfmodel.readme --check    # exit 1 and list them if any is stale

A cell is the row's predicted range (its kernels together) and its percentages of the
roofline as perf-model.md has them, in µs with one decimal below 20.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLE = ROOT / "benchmarks" / "results" / "model" / "perf-model.json"

_STAGES = {"1": "64x96x56x56", "2": "64x192x28x28", "3": "64x384x14x14", "4": "64x768x7x7"}
_HEAD = re.compile(r"\| case \((float16|float32)\) \| layout \| direction \| roofline µs \| "
                   r"cuda µs \(% of roofline\) \| triton µs \(% of roofline\) \|")
_COLUMNS = {5: "cuda", 6: "triton"}


def case_of(label: str) -> Optional[str]:
    """The model's case name for a README row label, or None for rows it does not quote.

    >>> case_of("dynamic depth-wise, stage 1"), case_of("depth-wise 31x31")
    ('dyn-dw 64x96x56x56 k7', 'dw 64x384x32x32 k31')
    """
    m = re.fullmatch(r"(dynamic )?depth-wise,? (?:DWNet-T )?stage (\d)(?: \(\d+x\d+\))?", label)
    if m:
        return ("dyn-dw " if m.group(1) else "dw ") + _STAGES[m.group(2)] + " k7"
    m = re.fullmatch(r"involution \(32 groups\), stage (\d)", label)
    if m:
        return "shared " + _STAGES[m.group(1)] + " k7 g32"
    m = re.fullmatch(r"depth-wise (13|31)x\1", label)
    return "dw 64x384x32x32 k" + m.group(1) if m else None


def cell(h200: dict) -> str:
    """One table cell from a record's ``h200`` entry, as perf-model.md writes it:
    ``cell({"low_us": 6.88, "high_us": 8.09, "pct_of_roofline": [55.9, 65.7]})`` is
    ``'6.9–8.1 (56–66%)'``."""
    def us(x: float) -> str:
        return f"{x:.1f}" if x < 20 else f"{x:.0f}"
    pct = h200["pct_of_roofline"]
    return f"{us(h200['low_us'])}–{us(h200['high_us'])} ({pct[0]:.0f}–{pct[1]:.0f}%)"


def refresh(text: str, records: list[dict]) -> tuple[str, list[str]]:
    """README text with its quoted cells recomputed, and one line per cell that changed."""
    rows = {(r["backend"], r["case"], r["dtype"], r["layout"], r["direction"]): r["h200"]
            for r in records}
    dtype, lines, changes = None, [], []
    for line in text.split("\n"):
        head = _HEAD.match(line)
        if head:
            dtype = head.group(1)
        elif not line.startswith("|"):
            dtype = None
        cells = line.split("|")
        case = case_of(cells[1].strip()) if dtype and len(cells) == 8 else None
        if case:
            layout = "nchw" if cells[2].strip() == "NCHW" else "channels_last"
            for col, backend in _COLUMNS.items():
                got = rows.get((backend, case, dtype, layout, cells[3].strip()))
                if got is None:
                    continue
                new = f" {cell(got)} "
                if new != cells[col]:
                    changes.append(f"{cells[1].strip()} {dtype} {cells[2].strip()} {cells[3].strip()} "
                                   f"{backend}: {cells[col].strip()} -> {new.strip()}")
                    cells[col] = new
            line = "|".join(cells)
        lines.append(line)
    return "\n".join(lines), changes


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perfmodel.readme", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="list stale cells and exit 1, write nothing")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--table", type=Path, default=TABLE)
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    new, changes = refresh(text, json.loads(args.table.read_text())["records"])
    for c in changes:
        print(c)
    if args.check:
        if changes:
            print(f"{len(changes)} README cells differ from {args.table.name}: "
                  "python -m perfmodel.readme rewrites them", file=sys.stderr)
        return 1 if changes else 0
    if new != text:
        args.readme.write_text(new)
    print(f"{len(changes)} cells rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
