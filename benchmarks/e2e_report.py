"""Outputs of the e2e suite: console table, results.md (with the speed-up summary), results.json.

The summary gives, per model, mode, batch and dtype, the best localconn
time over the layouts against the best torch time over the layouts (each
side in the layout that suits it) and, for training, whether the issue's
goal (every DWNet variant trains >= 1.3x faster on localconn) is met.
"""

from __future__ import annotations

import json
import os
from typing import Optional

HEADER = ("model", "impl", "mode", "batch", "dtype", "layout", "ms", "p20-p80", "img/s",
          "vs torch", "peak MB", "status")
#: training speed-up the DWNet variants should reach on localconn
TRAIN_GOAL = 1.3


def _num(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def rows(records: list[dict]) -> list[list[str]]:
    """One row of strings per record."""
    out = []
    for r in records:
        spread = "-" if r["ms"] is None else f"{_num(r['ms_p20'])}-{_num(r['ms_p80'])}"
        speed = r["speedup_vs_torch"]
        out.append([
            r["model"], r["impl"], r["mode"], str(r["batch"]), r["dtype"], r["layout"],
            _num(r["ms"]), spread, _num(r["images_per_s"]),
            "-" if speed is None else f"{speed:.2f}x", _num(r["peak_mem_mb"]), r["status"] or "-",
        ])
    return out


def summary(records: list[dict]) -> list[dict]:
    """Best-layout localconn vs best-layout torch per (model, mode, batch, dtype)."""
    best: dict[tuple, dict[str, float]] = {}
    for r in records:
        if r["ms"] is None:
            continue
        k = (r["model"], r["mode"], r["batch"], r["dtype"])
        side = best.setdefault(k, {})
        side[r["impl"]] = min(side.get(r["impl"], float("inf")), r["ms"])
    out = []
    for (model, mode, batch, dtype), side in best.items():
        lc, tc = side.get("localconn"), side.get("torch")
        speed = tc / lc if lc and tc else None
        goal = None
        if mode == "train" and speed is not None and "dwnet" in model:
            goal = speed >= TRAIN_GOAL
        out.append(dict(model=model, mode=mode, batch=batch, dtype=dtype, localconn_ms=lc,
                        torch_ms=tc, speedup=speed, meets_train_goal=goal))
    return out


def format_table(env: dict, records: list[dict]) -> str:
    """The plain-text table (printed last by the CLI)."""
    body = rows(records)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(HEADER)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADER, widths))
    out = [f"e2e | device: {env['device']} | torch {env['torch']} | triton {env['triton']}",
           line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(out)


def format_markdown(env: dict, records: list[dict]) -> str:
    """results.md: environment, summary (best layout each side), full table."""
    md = ["# localconn end-to-end benchmarks", ""]
    md += [f"- **{k}**: {v}" for k, v in env.items()]
    md += ["", "## Speed-up, best layout each side", "",
           "| model | mode | batch | dtype | localconn ms | torch ms | speed-up | "
           f">= {TRAIN_GOAL}x (train) |", "|---|---|---|---|---|---|---|---|"]
    for s in summary(records):
        goal = {None: "-", True: "yes", False: "no"}[s["meets_train_goal"]]
        speed = "-" if s["speedup"] is None else f"{s['speedup']:.2f}x"
        md.append(f"| {s['model']} | {s['mode']} | {s['batch']} | {s['dtype']} | "
                  f"{_num(s['localconn_ms'])} | {_num(s['torch_ms'])} | {speed} | {goal} |")
    md += ["", "## All records", "", "| " + " | ".join(HEADER) + " |",
           "|" + "|".join("---" for _ in HEADER) + "|"]
    md += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows(records)]
    return "\n".join(md) + "\n"


def write_all(out_dir: str, env: dict, records: list[dict]) -> None:
    """results.json (``{"env", "records", "summary"}``) and results.md in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"env": env, "records": records, "summary": summary(records)}, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(format_markdown(env, records))
