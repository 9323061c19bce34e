"""The run loop: every (case, dtype, layout) x provider x direction -> one record.

For each case/dtype/layout the inputs are made once and the float32
reference results computed once; each provider is then checked against
them (forward, and all gradients if a backward direction is asked for),
and only a provider that passes is timed. A provider that cannot run gets a
record per direction whose ``status`` says why; nothing is dropped. On the
CPU the providers of a case/setting are timed together, one sample of each
in turn, so their ratios are taken over the same seconds of a shared
machine; on a GPU one provider at a time.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from . import bytes as bytecount
from .cases import Case, cases
from .check import compare, oracle, run_once
from .directions import direction_call
from .environment import environment, load_warning, machine_load
from .progress import Progress
from .providers import TORCH_KINDS, Provider, select
from .roofline import achieved_gbps, copy_bandwidth_gbps, pct_of
from .timing import budget, measure, peak_memory_mb, time_cpu_in_turn
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


@dataclass
class _Timed:
    """A direction of a provider that passed its checks and its warm-up call: to time."""

    provider: str
    direction: str
    call: Callable[[], object]
    status: str


def prepare_provider(
    provider: Provider,
    case: Case,
    setting: Setting,
    inputs: Inputs,
    ref: _Oracle,
    directions: list[str],
) -> list[Union[dict, _Timed]]:
    """Check one provider on one case/setting, and warm up each direction to time.

    The forward is checked first, then (if a backward direction is asked for) the
    gradients; a provider whose backward fails or is wrong still has its forward timed.
    Per direction: a record (the provider cannot run it) or a :class:`_Timed`.
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
    out: list[Union[dict, _Timed]] = []
    for d in directions:
        if status[d] != "ok" and not status[d].startswith("unchecked"):
            out.append(_record(case, setting, d, provider.name, status=status[d]))
            continue
        try:
            call = direction_call(fn, inputs, d)
            call()  # warm-up: compilation / autotuning happen here, untimed
            out.append(_Timed(provider.name, d, call, status[d]))
        except Exception as e:
            out.append(_record(case, setting, d, provider.name, status=classify(e)))
    return out


def time_prepared(
    items: list[Union[dict, _Timed]], case: Case, setting: Setting
) -> list[dict]:
    """Time every :class:`_Timed` of ``items`` (one case/setting), in place: its record.

    On the CPU they are sampled in turn (:func:`~benchmarks.timing.time_cpu_in_turn`), so
    the providers of a row are compared over the same seconds of a shared machine; on a
    GPU each is timed on its own (CUDA events, an idle device). Then each call's peak
    memory, one call at a time.
    """
    device = setting.device
    timed = [t for t in items if isinstance(t, _Timed)]
    if device.type == "cpu":
        timings = time_cpu_in_turn([t.call for t in timed], budget(device, setting.quick))
    else:
        timings = []
        for t in timed:
            try:
                timings.append(measure(t.call, device, setting.quick))
            except Exception as e:  # noqa: BLE001  (its record says why)
                timings.append(e)
    done: dict[int, dict] = {}
    for t, timing in zip(timed, timings):
        if isinstance(timing, Exception):
            done[id(t)] = _record(case, setting, t.direction, t.provider, status=classify(timing))
            continue
        try:
            peak = peak_memory_mb(t.call, device)
        except Exception as e:  # noqa: BLE001
            done[id(t)] = _record(case, setting, t.direction, t.provider, status=classify(e))
            continue
        gbps = achieved_gbps(bytecount.op_bytes(case, setting.dtype, t.direction), timing.ms)
        done[id(t)] = _record(
            case, setting, t.direction, t.provider, ms=timing.ms, ms_p20=timing.p20,
            ms_p80=timing.p80, gbps=gbps, peak_mem_mb=peak, status=t.status,
        )
    return [done[id(t)] if isinstance(t, _Timed) else t for t in items]


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
    load = machine_load() if device.type == "cpu" else None  # (before this run loads it)
    copy_gbps = copy_bandwidth_gbps(device, opts.quick)
    env = environment(device, copy_gbps, opts.command)
    if load is not None:
        env["machine_load"] = load
        warning = load_warning(load)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    if opts.partial is not None:
        opts.partial.parent.mkdir(parents=True, exist_ok=True)
        opts.partial.write_text(json.dumps({"env": env}) + "\n")
    bar = Progress(len(todo) * len(providers), enabled=opts.progress)
    compile_budget = CompileBudget(QUICK_COMPILE_BUDGET_S if opts.quick else None)
    records: list[dict] = []
    try:
        for case, dtype, layout in todo:
            setting = Setting(device, DTYPES[dtype], layout, opts.quick)
            inputs = make_inputs(case, setting, opts.seed)
            ref = _Oracle(case, inputs)
            items: list[Union[dict, _Timed]] = []
            labels: list[str] = []
            for p in providers:
                label = f"{case.name} {dtype} {layout} {p.name}"
                declined = p.supports(case, setting) is not None  # (recorded, not timed)
                if declined:
                    bar.skip()
                else:
                    bar.describe(label)
                    labels.append(label)
                skipped = compile_budget.exhausted() if p.kind == "compile" and not declined else None
                if skipped:
                    items += [
                        _record(case, setting, d, p.name, status=skipped)
                        for d in opts.directions
                    ]
                else:
                    t0 = time.perf_counter()
                    prepared = prepare_provider(p, case, setting, inputs, ref, opts.directions)
                    if p.kind == "compile":
                        compile_budget.spent += time.perf_counter() - t0
                    if device.type != "cpu":  # (one at a time: its graphs freed before the next)
                        prepared = time_prepared(prepared, case, setting)
                        _free(device)
                    items += prepared
            # on the CPU, the providers of this case/setting timed together, in turn
            new = time_prepared(items, case, setting)
            records += new
            _append(opts.partial, new)
            for label in labels:
                bar.update(label)
            del inputs, ref, items, new
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
