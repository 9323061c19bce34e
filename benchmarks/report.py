"""Outputs: the console table, results.md, results.json and results.png.

Timed, wrong and failed runs are rows of the table; providers that did not
run a case (``unavailable``, ``unsupported``, ``skipped``) are summarised
below it, one line per provider and reason with the cases it concerns.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import defaultdict
from collections.abc import Sequence
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
    """The plain-text table (printed last by the CLI; tabulate, a line between cases)."""
    from tabulate import SEPARATING_LINE, tabulate

    body: list = []
    prev = None
    for r in table_rows(records):
        if prev is not None and r[0] != prev:
            body.append(SEPARATING_LINE)
        prev = r[0]
        body.append(r)
    out = [
        f"device: {env['device']} | torch {env['torch']} | triton {env['triton']} | "
        f"copy bandwidth {env['copy_gbps']:.1f} GB/s",
        tabulate(body, headers=HEADER, tablefmt="simple", disable_numparse=True),
    ]
    summary = not_run_summary(records)
    if summary:
        out += ["", "not run:"] + [f"  {s}" for s in summary]
    return "\n".join(out)


def format_markdown(env: dict, records: list[dict]) -> str:
    """results.md: environment, the table (tabulate), the providers that did not run, notes."""
    from tabulate import tabulate

    md = ["# localconn kernel benchmarks", ""]
    md += [f"- **{k}**: {v}" for k, v in env.items() if k != "auto_choices"]
    md += [
        "",
        "`ms` is the median (p20-p80 beside it); `GB/s` counts each input read once and "
        "each output written once (`benchmarks/bytes.py`); `%copy` is that over the measured "
        "device-to-device copy bandwidth; `vs torch` is the best PyTorch baseline's time "
        "(torch, torch.compile, FlexAttention) over this provider's.",
        "",
        tabulate([[c.replace("|", "/") for c in r] for r in table_rows(records)],
                 headers=HEADER, tablefmt="github", disable_numparse=True),
    ]
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


def _speedup_range(r: dict) -> Optional[tuple[float, float]]:
    """The speed-up at the provider's p80 and p20 times (its error bar)."""
    s, ms, lo, hi = r.get("speedup_vs_best_torch"), r["ms"], r.get("ms_p20"), r.get("ms_p80")
    if s is None or not lo or not hi:
        return None
    return s * ms / hi, s * ms / lo


def plot_title(env: dict, dtypes: Sequence[str] = ()) -> str:
    """The plot's title: what ran where and when (device, versions, dtypes, date, command)."""
    parts = [str(env.get("device", "?")), f"torch {env.get('torch', '?')}"]
    if env.get("triton"):
        parts.append(f"triton {env['triton']}")
    if dtypes:
        parts.append("/".join(dtypes))
    parts.append(str(env.get("date", ""))[:16].replace("T", " "))
    command = "\n".join(textwrap.wrap(env["command"], 140)) if env.get("command") else ""
    return "localconn kernel benchmarks: " + ", ".join(p for p in parts if p) + \
        (f"\n{command}" if command else "")


#: the panels of each direction's row: (record field, axis label, log scale)
PANELS = (
    ("speedup_vs_best_torch", "speed-up vs best PyTorch (> 1: faster)", True),
    ("ms", "time (ms, median; bars p20-p80)", True),
    ("pct_of_copy_bw", "% of copy bandwidth", False),
)


def _bar(r: dict, key: str) -> Optional[tuple[float, float]]:
    """The error bar of field ``key`` of record ``r``: from its p20/p80 times."""
    if key == "speedup_vs_best_torch":
        return _speedup_range(r)
    if key == "ms" and r.get("ms_p20") and r.get("ms_p80"):
        return r["ms_p20"], r["ms_p80"]
    return None


def figure(records: list[dict], env: Optional[dict] = None):
    """The results plot: a row per direction (fwd, bwd, fwdbwd), and in it the speed-up
    over the best PyTorch baseline, the absolute time and the % of copy bandwidth per
    case/dtype/layout and provider, with p20-p80 error bars; titled with the device,
    dtypes, date and command. None when nothing was timed.

    Example::

        >>> fig = figure(records, env)  # doctest: +SKIP
        >>> fig.savefig("results.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in records if r["ms"] is not None]
    if not timed:
        return None
    directions = [d for d in ("fwd", "bwd", "fwdbwd") if any(r["direction"] == d for r in timed)]
    directions += sorted({r["direction"] for r in timed} - set(directions))
    providers = list(dict.fromkeys(r["provider"] for r in timed))
    label = lambda r: f"{r['case']} {r['dtype']} {r['layout']}"  # noqa: E731
    rows = {d: list(dict.fromkeys(label(r) for r in timed if r["direction"] == d))
            for d in directions}
    most = max(len(v) for v in rows.values())
    panel_w = min(24.0, max(5.0, 0.3 * most))
    fig, axes = plt.subplots(len(directions), len(PANELS), squeeze=False,
                             figsize=(len(PANELS) * panel_w, 1.5 + 5.5 * len(directions)))
    markers = "os^vD<>pP*Xh"
    for row, d in enumerate(directions):
        x = {lab: i for i, lab in enumerate(rows[d])}
        for col, (key, ylabel, log) in enumerate(PANELS):
            ax = axes[row][col]
            for i, p in enumerate(providers):
                pts = [(x[label(r)], r[key], r) for r in timed
                       if r["provider"] == p and r["direction"] == d and r[key] is not None]
                if not pts:
                    continue
                ax.scatter([q[0] for q in pts], [q[1] for q in pts], label=p, s=22,
                           marker=markers[i % len(markers)])
                bars = [(xx, yy, _bar(r, key)) for xx, yy, r in pts]
                bars = [b for b in bars if b[2] is not None]
                if bars:
                    ax.errorbar([b[0] for b in bars], [b[1] for b in bars],
                                yerr=[[max(0.0, b[1] - b[2][0]) for b in bars],
                                      [max(0.0, b[2][1] - b[1]) for b in bars]],
                                fmt="none", ecolor="grey", elinewidth=0.8, capsize=2)
            if log and ax.has_data():
                ax.set_yscale("log")
            if key == "speedup_vs_best_torch":
                ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_title(f"{d}: {ylabel}", fontsize=10)
            ax.set_xticks(range(len(rows[d])))
            ax.set_xticklabels(rows[d], rotation=60, ha="right", fontsize=8)
            ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper right", fontsize=9, ncol=min(4, len(names)))
    if env:
        fig.suptitle(plot_title(env, list(dict.fromkeys(r["dtype"] for r in timed))),
                     fontsize=11, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def write_png(path: str, records: list[dict], env: Optional[dict] = None) -> Optional[str]:
    """:func:`figure` saved at ``path``; a reason if it is skipped."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed: results.png skipped (pip install matplotlib)"
    fig = figure(records, env)
    if fig is None:
        return "nothing was timed: results.png skipped"
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def write_all(out_dir: str, env: dict, records: list[dict]) -> list[str]:
    """Write results.json, results.md and results.png into ``out_dir``; return notes."""
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "results.json"), env, records)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(format_markdown(env, records))
    note = write_png(os.path.join(out_dir, "results.png"), records, env)
    return [note] if note else []
