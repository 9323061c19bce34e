"""Measured against predicted: the GPU check's kernel times beside the model's ranges.

    python -m perfmodel.calibrate benchmarks/results/nvidia-h200/kernel_times.jsonl \\
        benchmarks/results/model/perf-model.json [--out calibration.md]

The GPU check (``.ci/gpu-check``) times each primitive call with the Triton
backend's fixed tiles, so Triton rows compare with the model's fixed-tile
prediction (``fixed_tiles`` of a full run, or a run with ``--tiles fixed``); PyTorch's
own kernels (backend ``torch``) compare with the model's peer rows. Per row: measured median, predicted range, and measured /
predicted (low and high end); then, per backend and limiter, the median
ratio, which says how far to trust (or how to correct) each kind of
prediction; last, per backend, the mean absolute log error of each end (0.10 is
about 10 % off, 0.69 a factor of 2).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Optional

from .report import key


def join(measured: list[dict], model: list[dict], gpu: str) -> list[dict]:
    """Rows present in both, with ``ms`` measured and the model's range on ``gpu``."""
    pred = {key(r): r for r in model if gpu in r}
    out = []
    for m in measured:
        ok = m.get("status") == "ok" and m.get("ms")
        if not ok or m.get("backend") not in ("cuda", "triton", "torch"):  # torch: the peer row
            continue
        r = pred.get(key(m))
        if r is None:
            continue
        us = m["ms"] * 1e3
        p = r.get("fixed_tiles", r)[gpu]  # the GPU check runs Triton's fixed tiles
        out.append({"key": key(m), "backend": m["backend"], "limiter": p["limiter"],
                    "measured_us": us, "low_us": p["low_us"], "high_us": p["high_us"],
                    "vs_low": us / p["low_us"], "vs_high": us / p["high_us"],
                    "inside": p["low_us"] <= us <= p["high_us"],
                    "kernel": m.get("kernel"), "model_kernels": [k["name"] for k in r["kernels"]]})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| row | measured µs | predicted µs | measured / low | measured / high | in range |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['key']} | {r['measured_us']:.1f} | {r['low_us']:.0f}–{r['high_us']:.0f} "
                     f"| {r['vs_low']:.2f} | {r['vs_high']:.2f} | {'yes' if r['inside'] else 'no'} |")
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["backend"], r["limiter"]), []).append(r["vs_high"])
    lines += ["", "| backend | limiter | rows | median measured / high | in range |", "|---|---|---|---|---|"]
    for (b, lim), v in sorted(groups.items()):
        inside = sum(r["inside"] for r in rows if (r["backend"], r["limiter"]) == (b, lim))
        lines.append(f"| {b} | {lim} | {len(v)} | {statistics.median(v):.2f} | {inside}/{len(v)} |")
    lines += ["", "| backend | rows | mean abs log(measured / low) | mean abs log(measured / high) |",
              "|---|---|---|---|"]
    for b in sorted({r["backend"] for r in rows}):
        sel = [r for r in rows if r["backend"] == b]
        lo = statistics.mean(abs(math.log(r["vs_low"])) for r in sel)
        hi = statistics.mean(abs(math.log(r["vs_high"])) for r in sel)
        lines.append(f"| {b} | {len(sel)} | {lo:.3f} | {hi:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perfmodel.calibrate")
    p.add_argument("measured", type=Path, help="kernel_times.jsonl of the GPU check")
    p.add_argument("model", type=Path, help="perf-model.json of python -m perfmodel")
    p.add_argument("--gpu", default="h200")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    measured = [json.loads(line) for line in args.measured.read_text().splitlines() if line.strip()]
    model = json.loads(args.model.read_text())["records"]
    rows = join(measured, model, args.gpu)
    text = table(rows)
    if args.out:
        args.out.write_text(text)
    print(text)
    print(f"calibrate: {len(rows)} rows measured and predicted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
