"""The run loop: every (case, dtype, layout) x provider x direction -> one record.

For each case/dtype/layout the inputs are made once and the float32
reference results computed once; each provider is then checked against
them (forward, and all gradients if a backward direction is asked for),
and only a provider that passes is timed. A provider that cannot run gets a
record per direction whose ``status`` says why; nothing is dropped.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from . import bytes as bytecount
from .cases import Case, cases
from .check import compare, oracle, run_once
from .directions import direction_call
from .environment import environment
from .progress import Progress
from .providers import TORCH_KINDS, Provider, select
from .roofline import achieved_gbps, copy_bandwidth_gbps, pct_of
from .timing import measure, peak_memory_mb
from .workload import DTYPES, Inputs, Setting, make_inputs

#: the record fields, in schema order
FIELDS = (
    "suite", "case", "op", "mode", "dtype", "layout", "direction", "provider",
    "ms", "ms_p20", "ms_p80", "gbps", "pct_of_copy_bw", "speedup_vs_best_torch",
    "peak_mem_mb", "status",
)


@dataclass
class Options:
    """What to run (the CLI's arguments, resolved)."""

    suites: list[str]
    dtypes: list[str]
    directions: list[str]
    layouts: list[str]
    device: torch.device
    providers: list[str] = field(default_factory=list)
    case_filter: str = ""
    quick: bool = False
    seed: int = 0
    command: str = ""
    progress: bool = True
    #: records are appended here as they are made (JSON lines), so that a run
    #: stopped before the end keeps what it measured
    partial: Optional[Path] = None


def classify(e: BaseException) -> str:
    """A status line for an exception raised while building or running a provider."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if type(e).__name__ == "BackendUnavailableError" or isinstance(e, NotImplementedError):
        return f"unsupported: {msg}"[:300]
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in msg.lower():
        return "error: out of memory"
    return f"error: {type(e).__name__}: {msg}"[:300]


def _record(case: Case, setting: Setting, direction: str, provider: str, **values) -> dict:
    rec = dict.fromkeys(FIELDS)
    rec.update(
        suite=case.suite, case=case.name, op=case.op, mode=case.mode,
        dtype=setting.dtype_name, layout=setting.layout, direction=direction,
        provider=provider,
    )
    rec.update(values)
    return rec


def _free(device: torch.device, collect: bool = False) -> None:
    """Return cached CUDA memory (and run the garbage collector if ``collect``)."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _Oracle:
    """The float32 reference results of one case/setting, computed on first use."""

    def __init__(self, case: Case, inputs: Inputs) -> None:
        self.case, self.inputs = case, inputs
        self._results: dict[bool, list[torch.Tensor]] = {}
        self._error: Optional[str] = None

    def get(self, grads: bool) -> list[torch.Tensor]:
        if self._error:
            raise RuntimeError(self._error)
        if grads not in self._results:
            try:
                self._results[grads] = oracle(self.case, self.inputs, grads)
            except Exception as e:
                self._error = f"reference failed: {classify(e)}"
                raise RuntimeError(self._error) from e
        return self._results[grads]


def _check_provider(
    fn, case: Case, setting: Setting, inputs: Inputs, ref: _Oracle, grads: bool
) -> tuple[Optional[str], str]:
    """Run ``fn`` once (forward, then with gradients if ``grads``) against the reference.

    Returns ``(problem, ok)``: ``problem`` is None or the status of what
    went wrong; ``ok`` is ``"ok"``, or ``"unchecked: ..."`` without a reference.
    """
    try:
        got = run_once(fn, inputs, grads)
    except Exception as e:
        return classify(e), "ok"
    try:
        return compare(case, got, ref.get(grads), setting.dtype), "ok"
    except RuntimeError as e:  # no reference: time it, but say it is unchecked
        return None, f"unchecked: {e}"


def bench_provider(
    provider: Provider,
    case: Case,
    setting: Setting,
    inputs: Inputs,
    ref: _Oracle,
    directions: list[str],
) -> list[dict]:
    """Check, then time every direction of one provider on one case/setting.

    The forward is checked first, then (if a backward direction is asked
    for) the gradients; a provider whose backward fails or is wrong still
    has its forward timed.
    """
    device = setting.device
    reason = provider.supports(case, setting)
    fn = None
    if reason is None:
        try:
            fn = provider.build(case, setting)
        except Exception as e:
            reason = classify(e)
    if reason is None:
        reason, ok = _check_provider(fn, case, setting, inputs, ref, False)
    if reason is not None:
        status = dict.fromkeys(directions, reason)
    else:
        status = dict.fromkeys(directions, ok)
        if any(d != "fwd" for d in directions):
            problem, ok_bwd = _check_provider(fn, case, setting, inputs, ref, True)
            for d in directions:
                if d != "fwd":
                    status[d] = problem or ok_bwd
    _free(device)
    out = []
    for d in directions:
        if status[d] != "ok" and not status[d].startswith("unchecked"):
            out.append(_record(case, setting, d, provider.name, status=status[d]))
            continue
        call = None
        try:
            call = direction_call(fn, inputs, d)
            call()  # warm-up: compilation / autotuning happen here, untimed
            t = measure(call, device, setting.quick)
            peak = peak_memory_mb(call, device)
            gbps = achieved_gbps(bytecount.op_bytes(case, setting.dtype, d), t.ms)
            out.append(
                _record(
                    case, setting, d, provider.name, ms=t.ms, ms_p20=t.p20, ms_p80=t.p80,
                    gbps=gbps, peak_mem_mb=peak, status=status[d],
                )
            )
        except Exception as e:
            out.append(_record(case, setting, d, provider.name, status=classify(e)))
        finally:
            call = None  # drop the retained graph before the next direction
    _free(device)
    return out


class CompileBudget:
    """With --quick, stop starting compile providers once they have used ``seconds``.

    Compilation dominates a quick GPU run; the first cases of each suite are
    compiled, later ones are reported ``skipped`` rather than silently dropped.
    """

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds, self.spent = seconds, 0.0

    def exhausted(self) -> Optional[str]:
        if self.seconds is not None and self.spent > self.seconds:
            return (
                f"skipped: --quick compile budget ({self.seconds:.0f} s) spent; "
                f"run without --quick for every case"
            )
        return None


#: wall-clock seconds the compile kind may use with --quick
QUICK_COMPILE_BUDGET_S = 120.0


def add_roofline(records: list[dict], copy_gbps: float) -> None:
    """Fill ``pct_of_copy_bw``."""
    for r in records:
        r["pct_of_copy_bw"] = pct_of(r["gbps"], copy_gbps)


def add_speedups(records: list[dict], kinds: dict[str, str]) -> None:
    """Fill ``speedup_vs_best_torch``: best PyTorch baseline time / this time."""
    best: dict[tuple, float] = {}
    key = ("suite", "case", "dtype", "layout", "direction")
    for r in records:
        if r["ms"] is not None and kinds.get(r["provider"]) in TORCH_KINDS:
            k = tuple(r[f] for f in key)
            best[k] = min(best.get(k, float("inf")), r["ms"])
    for r in records:
        b = best.get(tuple(r[f] for f in key))
        if b is not None and r["ms"]:
            r["speedup_vs_best_torch"] = b / r["ms"]


def _append(path: Optional[Path], records: list[dict]) -> None:
    if path is not None:
        with path.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


def run(opts: Options) -> tuple[dict, list[dict]]:
    """Run everything ``opts`` asks for; return ``(env, records)``."""
    device = opts.device
    providers = select(opts.providers)
    todo = [
        (case, dtype, layout)
        for case in cases(opts.suites, opts.case_filter)
        for dtype in opts.dtypes
        for layout in opts.layouts
    ]
    copy_gbps = copy_bandwidth_gbps(device, opts.quick)
    env = environment(device, copy_gbps, opts.command)
    if opts.partial is not None:
        opts.partial.parent.mkdir(parents=True, exist_ok=True)
        opts.partial.write_text(json.dumps({"env": env}) + "\n")
    bar = Progress(len(todo) * len(providers), enabled=opts.progress)
    budget = CompileBudget(QUICK_COMPILE_BUDGET_S if opts.quick else None)
    records: list[dict] = []
    try:
        for case, dtype, layout in todo:
            setting = Setting(device, DTYPES[dtype], layout, opts.quick)
            inputs = make_inputs(case, setting, opts.seed)
            ref = _Oracle(case, inputs)
            for p in providers:
                label = f"{case.name} {dtype} {layout} {p.name}"
                declined = p.supports(case, setting) is not None  # (recorded, not timed)
                if declined:
                    bar.skip()
                else:
                    bar.describe(label)
                skipped = budget.exhausted() if p.kind == "compile" and not declined else None
                if skipped:
                    records += [
                        _record(case, setting, d, p.name, status=skipped)
                        for d in opts.directions
                    ]
                else:
                    t0 = time.perf_counter()
                    new = bench_provider(p, case, setting, inputs, ref, opts.directions)
                    records += new
                    _append(opts.partial, new)
                    if p.kind == "compile":
                        budget.spent += time.perf_counter() - t0
                if not declined:
                    bar.update(label)
            del inputs, ref
            _free(device, collect=True)
    finally:
        bar.close()
    add_roofline(records, copy_gbps)
    add_speedups(records, {p.name: p.kind for p in providers})
    choices = auto_choices()
    if choices:
        env["auto_choices"] = choices
    return env, records


def auto_choices() -> list[dict]:
    """What ``localconn-auto`` chose per primitive and problem, with the times it measured."""
    try:
        from localconn import autoselect
    except ImportError:
        return []
    return [
        {"problem": problem, "backend": name, "us": {b: t * 1e6 for b, t in times.items()}}
        for problem, (name, times) in autoselect.choices().items()
    ]
