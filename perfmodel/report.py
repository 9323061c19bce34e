"""The model's output: JSON records, a Markdown table, one line per row, the baseline check.

Every number here is a *prediction* of the static model, never a
measurement; the table says so in its title.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import targets
from .hardware import Gpu
from .model import Evaluated
from .predict import KernelCost, Prediction

#: a row regresses when its predicted H200 time (high end) grows by more than this
REGRESSION = 0.10


def key(r: dict) -> str:
    """A row's identity in the baseline."""
    return f"{r['suite']}|{r['case']}|{r['dtype']}|{r['layout']}|{r['backend']}|{r['direction']}"


def _kernel(k: KernelCost, preds: dict[str, Prediction], positions: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"name": k.name, "blocks": k.blocks, "threads": k.threads,
                           "registers": k.registers, "smem": k.smem, "stack": k.stack,
                           "dram_mb": k.dram_bytes / 1e6, "notes": k.notes}
    h200 = preds.get("h200") or next(iter(preds.values()))
    rec.update(blocks_per_sm=h200.blocks_per_sm, waves=round(h200.waves, 2),
               limiter=h200.limiter, terms_us={t: round(v, 2) for t, v in h200.terms.items()},
               predicted_us={g: [round(p.low_us, 2), round(p.high_us, 2)] for g, p in preds.items()})
    c = k.counts
    if c is not None:
        lanes = 32 * k.warps / positions  # warp-level counts -> thread instructions per position
        rec["per_output"] = {
            "instructions": round(c.issued * lanes, 2),
            "multiplies": round(c.mul_lanes * k.warps * 32 / positions, 2),
            "shared_wavefronts": round(c.wavefronts * k.warps / positions, 3),
            "global_sectors": round(c.sectors * k.warps / positions, 3),
            "global_lines": round(c.lines * k.warps / positions, 3),
            "by_class": {cls: round(v * lanes, 2) for cls, v in sorted(c.by_class.items())},
        }
        rec["inflight_bytes_per_warp"] = round(c.inflight, 1)
        rec["global_widths"] = {w: round(n * k.warps) for w, n in sorted(c.widths.items())
                                if w.startswith(("global", "local"))}
        if c.hot is not None:
            h = c.hot
            rec["hot_loop"] = {"source": h.source, "iterations_per_warp": round(h.iterations, 2),
                               "instructions": round(h.instrs, 1), "multiplies": round(h.multiplies, 1),
                               "shared": round(h.shared, 1), "global": round(h.global_, 1),
                               "share": round(h.share, 3)}
    return rec


def record(e: Evaluated, gpus: dict[str, Gpu]) -> dict[str, Any]:
    """The JSON record of one evaluated row."""
    w = e.work
    case = w.case
    positions = w.positions
    rec: dict[str, Any] = {
        "suite": case.suite, "case": case.name, "mode": case.mode, "dtype": w.dtype,
        "layout": w.layout, "backend": e.backend, "direction": w.direction,
        "kernels": [_kernel(k, {g: ps[i] for g, ps in e.per_kernel.items()}, positions)
                    for i, k in enumerate(e.kernels)],
        "n_kernels": len(e.kernels),
        "intermediate_mb": round(w.intermediates / 1e6, 1),
        "roofline": {"bytes_mb": round(w.roofline.bytes / 1e6, 2),
                     "gflop": round(2 * w.roofline.macs / 1e9, 3)},
    }
    if e.tiles:
        rec["triton_tiles"] = e.tiles
    if e.fixed is not None:  # what runs without autotuning (and what the GPU check times)
        rec["fixed_tiles"] = {g: {"low_us": round(p.low_us, 2), "high_us": round(p.high_us, 2),
                                  "limiter": p.limiter} for g, p in e.fixed.items()}
    for g, gpu in gpus.items():
        p = e.predictions[g]
        roof = w.roofline.time_us(gpu, w.dtype)
        rec[g] = {"low_us": round(p.low_us, 2), "high_us": round(p.high_us, 2),
                  "limiter": p.limiter, "roofline_us": round(roof, 2),
                  "bound": w.roofline.bound(gpu, w.dtype),
                  "pct_of_roofline": [round(100 * roof / p.high_us, 1),
                                      round(100 * roof / p.low_us, 1)]}
    rec["per_output"] = _totals(rec["kernels"])
    return rec


def _totals(kernels: list[dict]) -> dict[str, float]:
    tot: dict[str, float] = {}
    for k in kernels:
        for name, v in k.get("per_output", {}).items():
            if isinstance(v, (int, float)):
                tot[name] = round(tot.get(name, 0.0) + v, 3)
    return tot


def us_range(low: float, high: float, dash: str = "–") -> str:
    """``4.3–4.8`` under 10 µs (whole microseconds would read 4–5), ``16–19`` above."""
    digits = 1 if high < 10 else 0
    return f"{low:.{digits}f}{dash}{high:.{digits}f}"


def summary_line(r: dict, gpu: str = "h200") -> str:
    """``paper dw 64x96x56x56 k7 float16 nchw cuda fwd: 261-331 us predicted on h200 ...``."""
    p = r[gpu]
    names = ", ".join(k["name"] for k in r["kernels"])
    return (f"{r['suite']} {r['case']} {r['dtype']} {r['layout']} {r['backend']} {r['direction']}: "
            f"{us_range(p['low_us'], p['high_us'], '-')} us predicted on {gpu} (roofline "
            f"{p['roofline_us']:.1f} us, {p['pct_of_roofline'][0]:.0f}-{p['pct_of_roofline'][1]:.0f}%), "
            f"limiter {p['limiter']}; {r['n_kernels']} kernel(s): {names}")


def markdown(records: list[dict], gpus: dict[str, Gpu], meta: dict) -> str:
    """The table (predictions, labelled so) with the model's versions and assumptions link."""
    head = ["case", "dtype", "layout", "dir", "backend", "kernels", "instr/out", "mul/out",
            "smem wf/out", "limiter"]
    for g in gpus:
        head += [f"{g} µs (pred.)", f"{g} roofline µs", f"{g} % of roofline"]
    lines = [
        "# Predicted kernel times (static cost model, not measurements)",
        "",
        f"`{meta.get('command', 'python -m perfmodel')}` — torch {meta.get('torch')}, "
        f"triton {meta.get('triton')}, {meta.get('nvcc')}; sm_90 SASS, "
        "assumptions in perfmodel/README.md. Per-output counts are thread instructions per "
        "output position (N·C·Ho·Wo, each Kh·Kw multiply-adds); mul/out counts the "
        "multiplies issued (fused or not, masked lanes included).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['dtype']} | {r['layout']} | {r['direction']} | "
                         f"{r['backend']} | error: {r['error'][:80]} |")
            continue
        po = r["per_output"]
        names = "<br>".join(k["name"] for k in r["kernels"])
        row = [r["case"], r["dtype"], r["layout"], r["direction"], r["backend"], names,
               f"{po.get('instructions', 0):.0f}", f"{po.get('multiplies', 0):.0f}",
               f"{po.get('shared_wavefronts', 0):.2f}", r[next(iter(gpus))]["limiter"]]
        for g in gpus:
            p = r[g]
            row += [us_range(p["low_us"], p["high_us"]), f"{p['roofline_us']:.1f}",
                    f"{p['pct_of_roofline'][0]:.0f}–{p['pct_of_roofline'][1]:.0f}%"]
        lines.append("| " + " | ".join(row) + " |")
    gpu = "h200" if "h200" in gpus else next(iter(gpus))
    lines += peer_table(records, gpu)
    lines += targets.table(records, gpu, gpus[gpu].launch_overhead_us)
    return "\n".join(lines) + "\n"


def peer_table(records: list[dict], gpu: str = "h200") -> list[str]:
    """Markdown lines: per row that PyTorch's native kernels can run (backend ``torch``),
    the best localconn backend's predicted time and the predicted speed-up over PyTorch
    (like ends divided: low by low, high by high). Empty without ``torch`` rows."""
    def where(r: dict) -> tuple:
        return (r["case"], r["dtype"], r["layout"], r["direction"])

    ours = targets.best_ours(records, gpu)
    rows = [r for r in records if r["backend"] == "torch" and gpu in r and where(r) in ours]
    if not rows:
        return []
    out = ["", f"## Predicted speed-up over PyTorch's native depth-wise kernels ({gpu})", "",
           "PyTorch's rows (backend `torch`) cost the sm_90 SASS of its own kernels, "
           "aten/src/ATen/native/cuda/DepthwiseConv2d.cu, as `nn.Conv2d(groups=C)` runs them "
           "on NCHW tensors (dynamic depth-wise: the grouped convolution of (1, N·C, H, W)); "
           "see perfmodel/torch_native.py. Predictions, not measurements.", "",
           "| case | dtype | layout | dir | PyTorch µs | localconn µs | backend | speed-up |",
           "|---|---|---|---|---|---|---|---|"]
    for t in rows:
        o = ours[where(t)]
        a, b = t[gpu], o[gpu]
        lo, hi = sorted((a["low_us"] / b["low_us"], a["high_us"] / b["high_us"]))
        out.append(f"| {t['case']} | {t['dtype']} | {t['layout']} | {t['direction']} | "
                   f"{us_range(a['low_us'], a['high_us'])} | {us_range(b['low_us'], b['high_us'])} "
                   f"| {o['backend']} | {lo:.1f}–{hi:.1f}× |")
    return out


def write(out: Path, records: list[dict], gpus: dict[str, Gpu], meta: dict) -> None:
    """``out/perf-model.json`` and ``out/perf-model.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf-model.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    (out / "perf-model.md").write_text(markdown(records, gpus, meta))


def baseline(records: list[dict]) -> dict[str, Any]:
    """The baseline file's content: each row's predicted H200 range."""
    return {key(r): {"low_us": r["h200"]["low_us"], "high_us": r["h200"]["high_us"]}
            for r in records if "h200" in r}


def check(records: list[dict], base: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(regressions, notes)`` against a baseline: a row whose high end grew > 10% regresses."""
    bad, notes = [], []
    for r in records:
        k = key(r)
        if "h200" not in r:
            bad.append(f"{k}: {r.get('error', 'no prediction')}")
            continue
        if k not in base:
            notes.append(f"{k}: not in the baseline (add it with --write-baseline)")
            continue
        old, new = base[k]["high_us"], r["h200"]["high_us"]
        if new > old * (1 + REGRESSION):
            bad.append(f"{k}: {old:.1f} -> {new:.1f} us predicted (+{new / old - 1:.0%})")
        elif new < old * (1 - REGRESSION):
            notes.append(f"{k}: {old:.1f} -> {new:.1f} us predicted ({new / old - 1:+.0%}); "
                         "update the baseline")
    missing = set(base) - {key(r) for r in records}
    notes += [f"{k}: in the baseline but not evaluated" for k in sorted(missing)]
    return bad, notes
