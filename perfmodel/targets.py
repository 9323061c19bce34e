"""The depth-wise kernels' targets (issue 14) against the model's predictions.

Each target is a limit on the best localconn backend's predicted time (PyTorch's peer
rows excluded) for a set of rows of the ``paper`` suite (31x31: ``large-kernel``):

* depth-wise 7x7 forward and input gradient: at most 1.6x the roofline;
* depth-wise 7x7 weight gradient: at most 2.5x;
* depth-wise 31x31 in float16 / bfloat16: at most 3x the tensor-core roofline;
* involution (G = 32) forward: at most 1.5x the memory roofline;
* dynamic depth-wise: within 10% of the static row (same stage, dtype, layout, direction).

A row is ``met`` when its predicted range lies under the limit, ``low end`` when only
the low end does, ``missed`` otherwise. The model itself bounds what any kernel can
reach: one launch costs ``launch_overhead_us`` on top of the roofline at best (low end),
and the high end divides by ``ATTAINABLE``; the ``floor`` column gives that best case
as a multiple of the roofline, so a limit below it cannot be met in the model (7x7
planes: the roofline is about as short as the launch). For the dynamic rows the floor
is their own roofline over the static row's predicted time.

Example::

    >>> rows = [{"suite": "paper", "mode": "dw", "case": "dw 64x96x56x56 k7",
    ...          "dtype": "float16", "layout": "nchw", "direction": "fwd",
    ...          "backend": "cuda", "h200": {"low_us": 26.0, "high_us": 28.0,
    ...                                      "roofline_us": 17.9}}]
    >>> [r.status for r in evaluate(rows, launch_us=2.0)]
    ['met']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .predict import ATTAINABLE

#: (name, limit) of the ratio targets
LIMITS = {
    "dw 7x7 fwd / input-grad": 1.6,
    "dw 7x7 weight-grad": 2.5,
    "dw 31x31 16-bit": 3.0,
    "involution fwd": 1.5,
    "dynamic vs static": 1.1,
}


@dataclass
class Verdict:
    """One row against its target: the ratios (low, high) of the predicted time to the
    reference (the roofline, or the static row's time), the model's floor for that
    ratio, and the status."""

    target: str
    case: str
    dtype: str
    layout: str
    direction: str
    backend: str
    low: float
    high: float
    floor: float
    status: str


def _target(r: dict) -> Optional[str]:
    mode, case, suite = r.get("mode", r["case"].split()[0]), r["case"], r.get("suite", "paper")
    if mode == "dw" and case.endswith(" k31") and r["dtype"] in ("float16", "bfloat16"):
        return "dw 31x31 16-bit"  # (the large-kernel suite)
    if suite != "paper":
        return None
    if mode == "dw" and case.endswith(" k7"):
        return "dw 7x7 weight-grad" if r["direction"] == "weight-grad" else \
            "dw 7x7 fwd / input-grad"
    if mode == "shared" and r["direction"] == "fwd":
        return "involution fwd"
    if mode == "dyn-dw":
        return "dynamic vs static"
    return None


def best_ours(records: list[dict], gpu: str) -> dict[tuple, dict]:
    """Per (case, dtype, layout, direction): localconn's row with the lowest predicted high
    end on ``gpu`` (PyTorch's peer rows and errors left out)."""
    best: dict[tuple, dict] = {}
    for r in records:
        if r["backend"] == "torch" or gpu not in r or "error" in r:
            continue
        k = (r["case"], r["dtype"], r["layout"], r["direction"])
        if k not in best or r[gpu]["high_us"] < best[k][gpu]["high_us"]:
            best[k] = r
    return best


def _status(low: float, high: float, limit: float) -> str:
    return "met" if high <= limit else "low end" if low <= limit else "missed"


def evaluate(records: list[dict], gpu: str = "h200", launch_us: float = 2.0) -> list[Verdict]:
    """Every targeted row's verdict (best non-PyTorch backend per row), in record order."""
    best = best_ours(records, gpu)
    out = []
    for (case, dtype, layout, direction), r in best.items():
        target = _target(r)
        if target is None:
            continue
        p = r[gpu]
        if target == "dynamic vs static":
            static = best.get((case.replace("dyn-dw", "dw", 1), dtype, layout, direction))
            if static is None:
                continue
            s = static[gpu]
            low, high = p["low_us"] / s["low_us"], p["high_us"] / s["high_us"]
            floor = (p["roofline_us"] + launch_us) / s["low_us"]
        else:
            roof = p["roofline_us"]
            low, high = p["low_us"] / roof, p["high_us"] / roof
            floor = (roof + launch_us) / roof
        out.append(Verdict(target, case, dtype, layout, direction, r["backend"], low, high,
                           floor, _status(low, high, LIMITS[target])))
    return out


def table(records: list[dict], gpu: str = "h200", launch_us: float = 2.0) -> list[str]:
    """Markdown lines: a summary per target, then the rows not met. Empty without
    targeted rows."""
    verdicts = evaluate(records, gpu, launch_us)
    if not verdicts:
        return []
    out = ["", f"## Targets of the depth-wise kernels ({gpu}, predicted)", "",
           "The best localconn backend's predicted time as a multiple of the roofline "
           "(dynamic rows: of the static row's time) against each target; `floor` is the "
           "model's best case for any kernel (roofline plus one launch, "
           f"{launch_us:g} µs; the high end divides by {ATTAINABLE:g} on top), so a limit "
           "under it cannot be met in the model. perfmodel/targets.py.", "",
           "| target | limit | met | low end only | missed |", "|---|---|---|---|---|"]
    for name, limit in LIMITS.items():
        vs = [v for v in verdicts if v.target == name]
        if vs:
            counts = [sum(v.status == s for v in vs) for s in ("met", "low end", "missed")]
            out.append(f"| {name} | {limit:g}x | " + " | ".join(map(str, counts)) + " |")
    rest = [v for v in verdicts if v.status != "met"]
    if rest:
        out += ["", "| target | case | dtype | layout | dir | backend | ratio | floor | status |",
                "|---|---|---|---|---|---|---|---|---|"]
        for v in rest:
            out.append(f"| {v.target} | {v.case} | {v.dtype} | {v.layout} | {v.direction} | "
                       f"{v.backend} | {v.low:.2f}–{v.high:.2f} | {v.floor:.2f} | {v.status} |")
    return out
