"""Per-primitive kernel times of each backend and of PyTorch's peers (cost-model calibration).

    python -m benchmarks.kernel_times --out out/kt [--suite paper,large-kernel]
        [--dtype float16,float32] [--backend cuda,triton,torch] [--deadline 120] [--tiny]

For every case (mode, shape, window), dtype and layout, and every backend,
the three primitive calls that the case's layer runs in training are timed
on their own (``direction``):

=============  ==========================  =================================
direction      conn modes (``y = conn(x, W)``)  attn-corr (``S = corr(q, k)``)
=============  ==========================  =================================
fwd            ``conn2d(x, W)``             ``corr2d(q, k)``
input-grad     ``conn2d_transpose(g, W)``   ``conn2d(k, gS)`` (``dq``)
weight-grad    ``corr2d(g, x)``             ``conn2d_transpose(q, gS)`` (``dk``)
=============  ==========================  =================================

(:attr:`benchmarks.cases.Case.primitives`, shared with the cost model.)

``torch`` is PyTorch's own kernel for the same call where one exists: the
depth-wise convolution (``dw``: cuDNN's forward, and ``convolution_backward``
for the input and weight gradients; ``dyn-dw``: the same on the batch folded
into channels).

Timing (CUDA): each call is captured ``sets`` times in one CUDA graph, each
capture on its own copy of the inputs, so that the graph's replays read more
than three L2 caches' worth of data (cold L2, like a real network) and no
host time (Python, validation, launch) is counted; the time per call is a
replay's time over ``sets``, median and p20/p80 of the replays. Where capture
fails, CUDA events around eager calls (``timer = "events"``, host time
included). On the CPU: wall clock (a dry run of the script, not a measurement).

Every record also holds the kernel that ran (the CUDA backend's plan, the
Triton tile) and the result's error against the reference backend
(``max|got - ref| / max|ref|``, the reference in float32 on the same inputs).
Records are appended to ``kernel_times.jsonl`` as they are made, so a run
stopped by ``--deadline`` or killed keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from localconn.cuda_args import KERNEL_NAMES

from .cases import Case, cases
from .environment import environment
from .roofline import copy_bandwidth_gbps
from .workload import DTYPES, LAYOUTS, Setting, make_weight, window_kwargs

DIRECTIONS = ("fwd", "input-grad", "weight-grad")


#: bytes the inputs of one graph should span at least (three times the H100/H200 L2)
COLD_BYTES = 180 * 2**20
MAX_SETS = 16


@dataclass
class Call:
    """One timed call: ``fn(*args)`` and how to name what it ran."""

    primitive: str
    args: tuple[torch.Tensor, ...]
    fn: Callable[..., torch.Tensor]


def _randn(shape: Sequence[int], setting: Setting, gen: torch.Generator,
           image: bool = True) -> torch.Tensor:
    t = torch.randn(tuple(shape), device=setting.device, dtype=setting.dtype, generator=gen)
    return t.contiguous(memory_format=LAYOUTS[setting.layout]) if image and t.dim() == 4 else t


def tiny(case: Case) -> Case:
    """The case at a few-thousand-element size (CPU dry runs): N=2, 16 channels, 14x14."""
    N, C, H, W = case.shape
    c = 16 if case.mode in ("dw", "dyn-dw") else 16 * case.cw // math.gcd(16, case.cw)
    k = min(case.kernel, 7)
    size = max(14, k * 2)
    return Case(case.suite, case.mode, (2, c, size, size), k, min(case.padding, k // 2),
                case.window, case.groups)


def _op_kwargs(case: Case, backend: str) -> dict:
    return dict(window_kwargs(case), backend=backend)


def localconn_calls(case: Case, setting: Setting, backend: str,
                    gen: torch.Generator) -> dict[str, Call]:
    """The three timed calls of ``case`` on a localconn backend (``Case.primitives``)."""
    import localconn

    kw = _op_kwargs(case, backend)
    ws = case.weight_shape
    H, W = case.shape[2:]
    operands = {
        "image": _randn(case.shape, setting, gen),
        "out": _randn((case.shape[0], case.shape[1], *case.out_size), setting, gen),
        "weight": make_weight(case, setting, gen),
    }
    fns = {
        "conn2d": lambda x, w: localconn.local_conn2d(x, w, **kw),
        "conn2d_transpose": lambda y, w: localconn.local_conn2d_transpose(y, w, (H, W), **kw),
        "corr2d": lambda y, x: localconn.local_corr2d(y, x, ws, **kw),
    }
    return {d: Call(prim, (operands[a], operands[b]), fns[prim])
            for d, (prim, a, b) in case.primitives.items()}


def torch_calls(case: Case, setting: Setting, gen: torch.Generator) -> dict[str, Call]:
    """PyTorch's depth-wise convolution kernels for the same calls (dw, dyn-dw only)."""
    if case.mode not in ("dw", "dyn-dw") or case.window != "sliding":
        return {}
    N, C, H, W = case.shape
    K, p = case.kernel, case.padding
    x = _randn(case.shape, setting, gen)
    g = _randn((N, C, *case.out_size), setting, gen)
    folded = case.mode == "dyn-dw"
    groups = N * C if folded else C
    w = _randn((groups, 1, K, K), setting, gen, image=False)
    if folded:  # (1, N*C, H, W): the batch-folded grouped convolution
        x, g = x.reshape(1, N * C, H, W), g.reshape(1, N * C, *case.out_size)

    def fwd(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, padding=p, groups=groups)

    def backward(mask: list[bool]) -> Callable[..., torch.Tensor]:
        def run(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            out = torch.ops.aten.convolution_backward(
                g, x, w, None, [1, 1], [p, p], [1, 1], False, [0, 0], groups, mask)
            return out[0] if mask[0] else out[1]

        return run

    return {
        "fwd": Call("conv2d", (x, w), fwd),
        "input-grad": Call("conv2d_input", (g, x, w), backward([True, False, False])),
        "weight-grad": Call("conv2d_weight", (g, x, w), backward([False, True, False])),
    }


def reference_result(case: Case, call: Call) -> torch.Tensor:
    """The same call on the reference backend, in float32 (the error's yardstick)."""
    import localconn

    kw = _op_kwargs(case, "reference")
    args = [t.float() for t in call.args]
    H, W = case.shape[2:]
    if call.primitive in ("conn2d", "conv2d"):
        if call.primitive == "conv2d":
            return F.conv2d(args[0], args[1], padding=case.padding, groups=args[1].shape[0])
        return localconn.local_conn2d(args[0], args[1], **kw)
    if call.primitive == "conn2d_transpose":
        return localconn.local_conn2d_transpose(args[0], args[1], (H, W), **kw)
    if call.primitive == "corr2d":
        return localconn.local_corr2d(args[0], args[1], case.weight_shape, **kw)
    g, x, w = args
    mask = [call.primitive == "conv2d_input", call.primitive == "conv2d_weight", False]
    out = torch.ops.aten.convolution_backward(
        g, x, w, None, [1, 1], [case.padding] * 2, [1, 1], False, [0, 0], w.shape[0], mask)
    return out[0] if mask[0] else out[1]


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|got - ref| / max|ref|`` (inf if ``got`` has a NaN or the wrong shape)."""
    if got.shape != ref.shape or not bool(torch.isfinite(got).all()):
        return float("inf")
    scale = float(ref.abs().max()) or 1.0
    return float((got.float() - ref).abs().max()) / scale


class KernelSpy:
    """Records what the CUDA backend's op reports it ran (csrc/plan.h's Kernel)."""

    def __init__(self) -> None:
        self.last: Optional[str] = None

    def __enter__(self) -> KernelSpy:
        from localconn import cuda_backend

        self._module, self._ops = cuda_backend, cuda_backend._ops
        real, spy = cuda_backend._ops(), self

        class Ops:
            def __getattr__(self, name: str) -> Callable[..., int]:
                op = getattr(real, name)

                def call(*args: Any) -> int:
                    code = int(op(*args))
                    spy.last = KERNEL_NAMES[code] if 0 <= code < len(KERNEL_NAMES) else str(code)
                    return code

                return call

        cuda_backend._ops = Ops
        return self

    def __exit__(self, *exc: Any) -> None:
        self._module._ops = self._ops


def triton_tile() -> Optional[str]:
    """The tile of the Triton backend's last launch (autotuned, else fixed)."""
    launch = sys.modules.get("localconn.triton_kernels.launch")
    return None if launch is None else launch.LAST_TILE


def graph_time(call: Call, sets: int, reps: int) -> tuple[float, float, float]:
    """Median, p20, p80 ms per call from replays of a graph of ``sets`` calls."""
    inputs = [call.args] + [tuple(t.clone() for t in call.args) for _ in range(sets - 1)]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
        for args in inputs[:2]:
            call.fn(*args)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = [call.fn(*args) for args in inputs]
    graph.replay()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / sets)
    del outs, graph
    return _quantiles(samples)


def event_time(call: Call, reps: int) -> tuple[float, float, float]:
    """Median, p20, p80 ms of eager calls between CUDA events (host time included)."""
    samples = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call.fn(*call.args)
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return _quantiles(samples)


def wall_time(call: Call, reps: int) -> tuple[float, float, float]:
    """Median, p20, p80 ms of wall-clock calls (CPU)."""
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call.fn(*call.args)
        samples.append((time.perf_counter() - t0) * 1e3)
    return _quantiles(samples)


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), q[1], q[7]


def input_bytes(call: Call) -> int:
    """Bytes of the call's tensors (each read once)."""
    return sum(t.numel() * t.element_size() for t in call.args)


def measure(call: Call, device: torch.device, reps: int) -> tuple[tuple[float, float, float], str]:
    """``((ms, p20, p80), timer)`` for one call."""
    if device.type != "cuda":
        return wall_time(call, reps), "wall"
    sets = max(1, min(MAX_SETS, math.ceil(COLD_BYTES / max(1, input_bytes(call)))))
    try:
        return graph_time(call, sets, reps), f"graph x{sets}"
    except Exception as e:  # capture refused: eager calls between events
        torch.cuda.synchronize()
        return event_time(call, reps), f"events ({type(e).__name__})"


def run_one(case: Case, setting: Setting, backend: str, direction: str, call: Call,
            reps: int) -> dict:
    """Check one call against the reference, then time it; one record."""
    rec: dict[str, Any] = {
        "suite": case.suite, "case": case.name, "mode": case.mode,
        "dtype": setting.dtype_name, "layout": setting.layout, "backend": backend,
        "direction": direction, "primitive": call.primitive, "kernel": None,
        "ms": None, "ms_p20": None, "ms_p80": None, "timer": None, "rel_err": None,
        "status": "ok",
    }
    try:
        if backend == "cuda":
            with KernelSpy() as spy:
                got = call.fn(*call.args)
            rec["kernel"] = spy.last
        else:
            got = call.fn(*call.args)
            if backend == "triton":
                rec["kernel"] = triton_tile()
        rec["rel_err"] = rel_error(got, reference_result(case, call))
        del got
        (rec["ms"], rec["ms_p20"], rec["ms_p80"]), rec["timer"] = measure(
            call, setting.device, reps)
    except Exception as e:
        rec["status"] = f"error: {type(e).__name__}: {str(e).strip()[:300]}"
        if setting.device.type == "cuda":
            torch.cuda.synchronize()  # raises again if the context is broken: stop there
    return rec


def warm(calls: dict[str, Call]) -> None:
    """Run each call once (compilation only: fills Triton's cache for the timed run)."""
    for call in calls.values():
        call.fn(*call.args)


def summary(path: Path, dtype: str) -> str:
    """A compact table of ``dtype``'s records: ms per backend, and the best over PyTorch's."""
    rows: dict[tuple, dict[str, dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("dtype") == dtype:
            rows.setdefault((r["case"], r["layout"], r["direction"]), {})[r["backend"]] = r
    backends = sorted({b for v in rows.values() for b in v}, key=lambda b: (b == "torch", b))
    head = f"{'case':28} {'layout':6} {'dir':11} " + " ".join(f"{b + ' ms':>18}" for b in backends)
    lines = [f"kernel times, {dtype} (ms per call; * = rel_err > 1e-2; ! = not ok; "
             "torch/ours: > 1 where ours is faster)", head + "  torch/ours"]

    def cell(r: Optional[dict]) -> str:
        if r is None:
            return ""
        if r["status"] != "ok" or r["ms"] is None:
            return "!" + r["status"][:17]
        bad = "*" if (r["rel_err"] or 0) > 1e-2 else ""
        return f"{r['ms']:.4f}{bad} {(r['kernel'] or '')[:10]}"

    for (case, layout, direction), v in rows.items():
        ours = [r["ms"] for b, r in v.items() if b != "torch" and r["ms"]]
        ratio = (f"{v['torch']['ms'] / min(ours):.2f}x" if ours and "torch" in v
                 and v["torch"]["ms"] else "")
        lines.append(f"{case[:28]:28} {layout[:6]:6} {direction:11} "
                     + " ".join(f"{cell(v.get(b)):>18}" for b in backends) + f"  {ratio}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the requested cases and append records to ``OUT/kernel_times.jsonl``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.kernel_times")
    p.add_argument("--out", default="out/kernel-times")
    p.add_argument("--suite", default="paper,large-kernel")
    p.add_argument("--dtype", default="float16,float32")
    p.add_argument("--layout", default="nchw,channels_last")
    p.add_argument("--backend", default="cuda,triton,torch")
    p.add_argument("--case", default="", help="only cases whose name contains this")
    p.add_argument("--deadline", type=float, default=0.0, help="seconds; 0: none")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU dry run)")
    p.add_argument("--device", default=None)
    p.add_argument("--warm", action="store_true",
                   help="run each call once and record nothing (fills Triton's cache)")
    p.add_argument("--shard", default="0/1", help="I/N: every N-th item from the I-th")
    p.add_argument("--summary", type=Path, default=None,
                   help="print the table of a kernel_times.jsonl (first --dtype) and exit")
    args = p.parse_args(argv)
    if args.summary is not None:
        print(summary(args.summary, args.dtype.split(",")[0]))
        return 0
    start = time.monotonic()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    todo = cases([s for s in args.suite.split(",") if s], args.case)
    if args.tiny:
        todo = [tiny(c) for c in todo]
    backends = [b for b in args.backend.split(",") if b]
    items = [(dtype, case, layout) for dtype in args.dtype.split(",") for case in todo
             for layout in args.layout.split(",")]
    shard, shards = (int(v) for v in args.shard.split("/"))
    items = items[shard::shards]
    if args.warm:
        for dtype, case, layout in items:
            setting = Setting(device, DTYPES[dtype], layout)
            gen = torch.Generator(device=device).manual_seed(0)
            for backend in backends:
                warm(localconn_calls(case, setting, backend, gen))
        print(f"kernel_times: warmed {len(items)} items in {time.monotonic() - start:.0f} s")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "kernel_times.jsonl"
    n = 0
    copy_gbps = copy_bandwidth_gbps(device, quick=True)
    env = environment(device, copy_gbps, "python -m benchmarks.kernel_times " + " ".join(
        sys.argv[1:] if argv is None else argv))
    with path.open("a") as f:
        f.write(json.dumps({"env": env}) + "\n")
        for dtype, case, layout in items:
            if args.deadline and time.monotonic() - start > args.deadline:
                f.write(json.dumps({"status": f"stopped: deadline {args.deadline} s"}) + "\n")
                print(f"kernel_times: deadline reached after {n} records")
                return 0
            setting = Setting(device, DTYPES[dtype], layout)
            gen = torch.Generator(device=device).manual_seed(0)
            for backend in backends:
                calls = (torch_calls(case, setting, gen) if backend == "torch"
                         else localconn_calls(case, setting, backend, gen))
                for direction, call in calls.items():
                    rec = run_one(case, setting, backend, direction, call, args.reps)
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
                    n += 1
                    ms = "-" if rec["ms"] is None else f"{rec['ms']:.4f}"
                    print(f"{rec['case']:28} {dtype:8} {layout:13} {backend:9} {direction:11} "
                          f"{rec['kernel'] or '':24} {ms} ms err={rec['rel_err']} "
                          f"{rec['timer']} {rec['status'][:80]}", flush=True)
                del calls
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(f"kernel_times: {n} records in {path} ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOCALCONN_TRITON_AUTOTUNE", "0")
    sys.exit(main())
