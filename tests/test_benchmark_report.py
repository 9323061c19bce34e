"""The kernel benchmark's record of auto's choices (results.json env, results.md section)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import report, runner  # noqa: E402
from localconn import autoselect  # noqa: E402


def test_auto_choices_reach_the_results(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = "conn2d static-spatial float16 nchw (64, 96, 56, 56) sliding k7x7 s1x1 p3/3/3/3 d1x1"
    monkeypatch.setattr(
        autoselect, "choices", lambda: {problem: ("cuda", {"triton": 2.5e-5, "cuda": 1.25e-5})}
    )
    (choice,) = runner.auto_choices()
    assert choice["problem"] == problem and choice["backend"] == "cuda"
    assert choice["us"] == pytest.approx({"triton": 25.0, "cuda": 12.5})
    md = report.format_markdown({"device": "test", "auto_choices": [choice]}, [])
    assert "## auto's choices" in md
    assert f"| {problem} | cuda | triton 25, cuda 12.5 |" in md
    assert "**auto_choices**" not in md  # not among the environment bullets


def test_no_choices_no_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autoselect, "choices", lambda: {})
    assert runner.auto_choices() == []
    assert "auto's choices" not in report.format_markdown({"device": "test"}, [])


def test_progress_counts_only_work_that_runs_and_writes_lines_in_logs() -> None:
    """skip() takes declined items out of the total; a stream that is not a terminal gets
    whole lines (no carriage returns), about one a tenth of the work and the last one."""
    import io

    from benchmarks.progress import Progress

    out = io.StringIO()
    p = Progress(100, stream=out)
    for i in range(100):
        if i % 2:
            p.skip()
        else:
            p.update(f"item {i}")
    p.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 8 <= len(lines) <= 12 and lines[-1] == "[50/50] item 98"


def test_gpu_suites_on_the_cpu_warn() -> None:
    from benchmarks.__main__ import cpu_warning, options, parse

    warning = cpu_warning(options(parse(["--suite", "paper,cpu", "--device", "cpu"]), ""))
    assert warning and "paper" in warning and "--suite cpu" in warning
    assert cpu_warning(options(parse(["--suite", "cpu", "--device", "cpu"]), "")) is None


def test_plot_is_titled_and_has_error_bars(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    env = {"device": "NVIDIA H200", "torch": "2.11.0", "triton": "3.6.0",
           "date": "2026-12-04T12:09:15+00:00", "command": "python -m benchmarks --quick"}
    title = report.plot_title(env)
    assert "NVIDIA H200" in title and "2026-12-04 12:09" in title and "--quick" in title
    rec = {"case": "dw 8x64x28x28 k7", "dtype": "float32", "layout": "nchw", "direction": "fwd",
           "provider": "localconn-reference", "ms": 2.0, "ms_p20": 1.6, "ms_p80": 2.5,
           "speedup_vs_best_torch": 1.5, "pct_of_copy_bw": 10.0}
    assert report._speedup_range(rec) == pytest.approx((1.2, 1.875))
    assert report.write_png(str(tmp_path / "r.png"), [rec], env) is None
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_cpu_timing_budget_warms_up_and_samples_enough() -> None:
    """CPU timings (quick or not) warm up first and take at least 5 samples for the median
    (the budget, not a timed test)."""
    import torch

    from benchmarks.timing import budget

    for quick in (True, False):
        b = budget(torch.device("cpu"), quick)
        assert b.warmup_ms > 0 and b.min_reps >= 5 and b.max_reps >= b.min_reps


def test_cpu_peak_memory_counts_what_a_call_allocates() -> None:
    """The runner's CPU peak memory (resident-set high-water mark over the resident set
    before the call): a call that holds 64 MB at once reads about 64 MB, one that
    allocates nothing about 0, also when the blocks come from memory the heap kept from
    earlier calls. One that holds 16 MB twice in turn reads at least 16 MB and at most
    32: whether malloc gives the second block the first one's pages is glibc's choice
    (CI's pytest workers got 32), so the reading is the resident set's peak, an upper
    bound of the live peak."""
    import torch

    from benchmarks.timing import _glibc_with_proc, peak_memory_mb

    if _glibc_with_proc() is None:
        pytest.skip("no /proc/self/clear_refs or glibc mallopt here (not Linux/glibc)")
    cpu = torch.device("cpu")
    x = torch.randn(1024)

    def twice() -> None:
        for _ in range(2):
            torch.ones(4 * 2**20).sum()

    for _ in range(3):  # leave freed blocks in the heap, as timing runs do
        torch.ones(16 * 2**20).sum()
        twice()
    together = peak_memory_mb(lambda: torch.ones(16 * 2**20).sum(), cpu)
    in_turn = peak_memory_mb(twice, cpu)
    nothing = peak_memory_mb(lambda: x.sum(), cpu)
    assert together is not None and in_turn is not None and nothing is not None
    assert 60 <= together <= 72, together
    assert 14 <= in_turn <= 34, in_turn
    assert nothing <= 4, nothing


def test_cpu_providers_are_sampled_in_turn() -> None:
    """The CPU runner times a row's calls one sample each in turn, the order reversed every
    round; a call that raises is reported in its place and the others keep their samples;
    each timing belongs to its own call (a call that sleeps 2 ms has a median >= 2 ms)."""
    import time

    from benchmarks.timing import Budget, Timing, time_cpu_in_turn

    log: list[int] = []
    calls = [lambda i=i: log.append(i) for i in range(3)]
    times = time_cpu_in_turn(calls, Budget(warmup_ms=0, rep_ms=0, min_reps=5, max_reps=5))
    assert log == [0, 0, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0,
                   0, 0, 1, 1, 2, 2]  # (each sample the second of two calls in a row)
    assert all(isinstance(t, Timing) for t in times)

    count = [0]

    def fails_third_time() -> None:
        count[0] += 1
        if count[0] == 5:  # (in the third round)
            raise RuntimeError("boom")

    sleeper = lambda: time.sleep(0.002)  # noqa: E731
    fast = lambda: None  # noqa: E731
    got = time_cpu_in_turn([fast, fails_third_time, sleeper],
                           Budget(warmup_ms=0, rep_ms=0, min_reps=6, max_reps=6))
    assert isinstance(got[1], RuntimeError) and "boom" in str(got[1])
    assert isinstance(got[0], Timing) and isinstance(got[2], Timing)
    assert got[2].ms >= 2.0 and got[0].ms < 2.0


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {root!r})
from benchmarks import __main__ as cli, runner
real, calls = runner.time_prepared, [0]

def time_then_die(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 2:  # killed while timing the second case/setting
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

runner.time_prepared = time_then_die
cli.main({argv!r})
"""


def test_a_killed_run_keeps_what_it_measured(tmp_path: Path) -> None:
    """A benchmark run killed (SIGKILL) part way leaves every record measured before the
    kill in records.jsonl, after the environment line; no results.json."""
    import json
    import signal
    import subprocess

    root = str(ROOT)
    argv = ["--suite", "cpu", "--case", "dw 8x64x28x28", "--quick", "--device", "cpu",
            "--provider", "localconn-reference,torch-conv2d", "--dtype", "float32",
            "--layout", "nchw,channels_last", "--direction", "fwd", "--no-progress",
            "--out", str(tmp_path)]
    run = subprocess.run([sys.executable, "-c", KILLED_RUN.format(root=root, argv=argv)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert "env" in lines[0]
    records = lines[1:]
    assert {(r["layout"], r["provider"]) for r in records} == {
        ("nchw", "localconn-reference"), ("nchw", "torch-conv2d")}
    assert all(r["status"] == "ok" and r["ms"] > 0 for r in records)
    assert not (tmp_path / "results.json").exists()


def test_machine_load_is_recorded_and_a_busy_machine_warned() -> None:
    """CPU runs record the machine's load (load averages, busy and stolen CPU time over a
    short window) and warn when it is high; a spinning thread shows as busy time."""
    import threading
    import time

    from benchmarks.environment import load_warning, machine_load

    quiet = {"cpus": 4, "loadavg": [0.5, 0.4, 0.3], "busy_pct": 2.0, "steal_pct": 0.0}
    assert load_warning(quiet) is None
    for busy in ({**quiet, "loadavg": [3.1, 1, 1]}, {**quiet, "busy_pct": 40.0},
                 {**quiet, "steal_pct": 25.0}):
        warning = load_warning(busy)
        assert warning is not None and "busy" in warning
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat here (not Linux)")
    stop = time.perf_counter() + 1.0

    def spin() -> None:
        while time.perf_counter() < stop:
            pass

    t = threading.Thread(target=spin)
    t.start()
    load = machine_load(0.3)
    t.join()
    assert load["cpus"] >= 1 and len(load["loadavg"]) == 3
    assert load["busy_pct"] >= 100 / load["cpus"] * 0.5, load  # one spinning thread
    assert 0 <= load["steal_pct"] <= 100


def test_plot_has_a_row_per_direction_with_times_beside_the_speedups() -> None:
    """The results plot: a row per direction, and in each the speed-up, the absolute time
    (log, p20-p80 bars) and the % of copy bandwidth; the title names the dtypes."""
    pytest.importorskip("matplotlib")

    def rec(provider: str, direction: str, ms: float, speedup: float) -> dict:
        return {"case": "dw 8x64x28x28 k7", "dtype": "bfloat16", "layout": "nchw",
                "direction": direction, "provider": provider, "ms": ms, "ms_p20": 0.9 * ms,
                "ms_p80": 1.2 * ms, "speedup_vs_best_torch": speedup, "pct_of_copy_bw": 5.0}

    records = [rec("localconn-cpu", "fwd", 1.0, 2.0), rec("torch-conv2d", "fwd", 2.0, 1.0),
               rec("localconn-cpu", "fwdbwd", 3.0, 1.5), rec("torch-conv2d", "fwdbwd", 4.5, 1.0)]
    env = {"device": "cpu x86_64 (2 threads)", "torch": "2.13.0", "date": "2026-12-04T23:00:00",
           "command": "python -m benchmarks --suite cpu"}
    fig = report.figure(records, env)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 2 * len(report.PANELS)
    assert [t.split(":")[0] for t in titles] == ["fwd"] * 3 + ["fwdbwd"] * 3
    time_axes = [ax for ax in fig.axes if "time (ms" in ax.get_title()]
    assert len(time_axes) == 2 and all(ax.get_yscale() == "log" for ax in time_axes)
    lo, hi = time_axes[1].get_ylim()
    assert lo <= 0.9 * 3.0 and hi >= 1.2 * 4.5  # the p20-p80 bars are drawn
    assert "bfloat16" in fig._suptitle.get_text()


def test_gpu_suites_on_the_cpu_stop_at_once(tmp_path: Path, capsys) -> None:
    """Asking for a GPU-sized suite on the CPU stops before measuring anything (exit 2,
    naming the CPU suite and --allow-slow), unless --case narrows it or --allow-slow."""
    from benchmarks import __main__ as cli

    code = cli.main(["--suite", "paper", "--device", "cpu", "--no-progress",
                     "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "--allow-slow" in err and "--suite cpu" in err
    assert not any(tmp_path.iterdir())  # (nothing measured, not even a partial record)
