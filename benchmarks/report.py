"""Outputs: the console table, results.md, results.json and results.png.

Timed, wrong and failed runs are rows of the table; providers that did not
run a case (``unavailable``, ``unsupported``, ``skipped``) are summarised
below it, one line per provider and reason with the cases it concerns.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Optional

HEADER = (
    "case", "dtype", "layout", "dir", "provider", "ms", "p20-p80", "GB/s", "%copy",
    "vs torch", "peak MB", "status",
)
NOT_RUN = ("unavailable", "unsupported", "skipped")


def _num(v: Optional[float], digits: int = 3) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def is_not_run(rec: dict) -> bool:
    """True for records of a provider that did not attempt the case."""
    return rec["status"].split(":")[0] in NOT_RUN


def table_rows(records: list[dict]) -> list[list[str]]:
    """One row of strings per attempted record, in run order."""
    rows = []
    for r in records:
        if is_not_run(r):
            continue
        spread = "-" if r["ms"] is None else f"{_num(r['ms_p20'])}-{_num(r['ms_p80'])}"
        speed = None if r["speedup_vs_best_torch"] is None else r["speedup_vs_best_torch"]
        rows.append([
            f"{r['suite']}: {r['case']}", r["dtype"], r["layout"], r["direction"], r["provider"],
            _num(r["ms"]), spread, _num(r["gbps"]), _num(r["pct_of_copy_bw"], 2),
            "-" if speed is None else f"{speed:.2f}x", _num(r["peak_mem_mb"]), r["status"],
        ])
    return rows


def not_run_summary(records: list[dict]) -> list[str]:
    """``provider: status (n cases/settings)`` lines for providers that did not run."""
    groups: dict[tuple[str, str], set] = defaultdict(set)
    for r in records:
        if is_not_run(r):
            groups[(r["provider"], r["status"])].add((r["case"], r["dtype"], r["layout"]))
    order = {p: i for i, p in enumerate(dict.fromkeys(r["provider"] for r in records))}
    lines = []
    for (provider, status), where in sorted(groups.items(), key=lambda kv: order[kv[0][0]]):
        cases = sorted({c for c, _, _ in where})
        shown = ", ".join(cases[:3]) + (f", ... ({len(cases)} cases)" if len(cases) > 3 else "")
        lines.append(f"{provider} - {status} [{shown}]")
    return lines


def format_console(env: dict, records: list[dict]) -> str:
    """The plain-text table (printed last by the CLI)."""
    rows = table_rows(records)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(HEADER)]
    widths[-1] = len(HEADER[-1])  # the status column is free-form, last
    line = "  ".join(h.ljust(w) for h, w in zip(HEADER, widths))
    out = [
        f"device: {env['device']} | torch {env['torch']} | triton {env['triton']} | "
        f"copy bandwidth {env['copy_gbps']:.1f} GB/s",
        line,
        "-" * len(line),
    ]
    prev = None
    for r in rows:
        if prev is not None and r[0] != prev:
            out.append("")
        prev = r[0]
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    summary = not_run_summary(records)
    if summary:
        out += ["", "not run:"] + [f"  {s}" for s in summary]
    return "\n".join(out)


def format_markdown(env: dict, records: list[dict]) -> str:
    """results.md: environment, the table, the providers that did not run, notes."""
    md = ["# localconn kernel benchmarks", ""]
    md += [f"- **{k}**: {v}" for k, v in env.items() if k != "auto_choices"]
    md += [
        "",
        "`ms` is the median (p20-p80 beside it); `GB/s` counts each input read once and "
        "each output written once (`benchmarks/bytes.py`); `%copy` is that over the measured "
        "device-to-device copy bandwidth; `vs torch` is the best PyTorch baseline's time "
        "(torch, torch.compile, FlexAttention) over this provider's.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    md += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in table_rows(records)]
    summary = not_run_summary(records)
    if summary:
        md += ["", "## Not run", ""] + [f"- {s}" for s in summary]
    if env.get("auto_choices"):
        md += ["", "## auto's choices", "",
               "Per primitive and problem, the backend `localconn-auto` measured fastest "
               "(`localconn.autoselect`) and the median times it measured, in us.", "",
               "| problem | chosen | times (us) |", "|---|---|---|"]
        md += [f"| {c['problem']} | {c['backend']} | "
               + ", ".join(f"{b} {_num(t)}" for b, t in c["us"].items()) + " |"
               for c in env["auto_choices"]]
    return "\n".join(md) + "\n"


def write_json(path: str, env: dict, records: list[dict]) -> None:
    """results.json with the documented schema."""
    with open(path, "w") as f:
        json.dump({"env": env, "records": records}, f, indent=1)


def write_png(path: str, records: list[dict]) -> Optional[str]:
    """Speed-up and % of copy bandwidth per case and provider; a reason if skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: results.png skipped (pip install matplotlib)"
    timed = [r for r in records if r["ms"] is not None]
    if not timed:
        return "nothing was timed: results.png skipped"
    labels: list[str] = []
    for r in timed:
        label = f"{r['case']} {r['dtype']} {r['layout']} {r['direction']}"
        if label not in labels:
            labels.append(label)
    x = {label: i for i, label in enumerate(labels)}
    providers = list(dict.fromkeys(r["provider"] for r in timed))
    width = min(60.0, max(10.0, 0.28 * len(labels)))
    fig, axes = plt.subplots(2, 1, figsize=(width, 10), sharex=True)
    markers = "os^vD<>pP*Xh"
    for i, p in enumerate(providers):
        rs = [r for r in timed if r["provider"] == p]
        for ax, key in zip(axes, ("speedup_vs_best_torch", "pct_of_copy_bw")):
            pts = [(x[f"{r['case']} {r['dtype']} {r['layout']} {r['direction']}"], r[key])
                   for r in rs if r[key] is not None]
            if pts:
                ax.scatter(*zip(*pts), label=p, marker=markers[i % len(markers)], s=18)
    axes[0].set_yscale("log")
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_ylabel("speed-up vs best PyTorch")
    axes[1].set_ylabel("% of copy bandwidth")
    axes[0].legend(fontsize=8, ncol=4)
    axes[1].set_xticks(range(len(labels)))
    axes[1].set_xticklabels(labels, rotation=90, fontsize=6)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_all(out_dir: str, env: dict, records: list[dict]) -> list[str]:
    """Write results.json, results.md and results.png into ``out_dir``; return notes."""
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "results.json"), env, records)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(format_markdown(env, records))
    note = write_png(os.path.join(out_dir, "results.png"), records)
    return [note] if note else []
