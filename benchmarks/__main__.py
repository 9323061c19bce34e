"""Command line: ``python -m benchmarks [--suite ...] [--quick] [--out DIR]``.

Examples::

    python -m benchmarks --suite cpu --quick --out /tmp/b          # CPU, ~1 minute
    python -m benchmarks --quick                                   # GPU: paper, large-kernel,
                                                                   # attention
    python -m benchmarks --suite paper --dtype float16,bfloat16 \\
        --direction fwd,bwd,fwdbwd --layout nchw,channels_last --provider 'localconn-*,torch'
    python -m benchmarks --list
    python -m benchmarks --suite e2e --quick                       # whole models (benchmarks/e2e.py)

Writes ``results.json``, ``results.md`` and ``results.png`` into ``--out``
and prints the table last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch

from . import e2e
from .cases import SUITES, cases
from .directions import DIRECTIONS
from .providers import all_providers
from .report import format_console, write_all
from .runner import Options, run
from .workload import DTYPES, LAYOUTS

#: the records as they are made, one JSON object per line (removed once results.json is written)
PARTIAL = "records.jsonl"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _check(values: list[str], known, what: str) -> list[str]:
    bad = [v for v in values if v not in known]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {', '.join(known)}")
    return values


def parse(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command-line arguments."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description="localconn kernel benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--suite", type=_csv, default=None,
                   help=f"comma list of {', '.join(SUITES)} (default: paper,large-kernel,"
                   f"attention on CUDA, cpu on the CPU), or {e2e.E2E} alone: whole models, "
                   "images/s (benchmarks/e2e.py)")
    p.add_argument("--dtype", type=_csv, default=None,
                   help="comma list of float32,float16,bfloat16 (default CUDA: all three, "
                   "float16 with --quick; CPU: float32)")
    p.add_argument("--direction", type=_csv, default=list(DIRECTIONS),
                   help="comma list of fwd,bwd,fwdbwd (default: all)")
    p.add_argument("--layout", type=_csv, default=None,
                   help="comma list of nchw,channels_last (default: both; nchw only on the "
                   "CPU with --quick)")
    p.add_argument("--provider", type=_csv, default=[],
                   help="comma list of provider names (globs, e.g. 'localconn-*') or kinds "
                   "(localconn, torch, naive, compile, flex); default: all")
    p.add_argument("--case", default="", help="only cases whose name contains this string")
    p.add_argument("--quick", action="store_true",
                   help="fewer dtypes and repetitions (no torch.compile on the CPU)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--out", default="out/bench", help="output directory (default: out/bench)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list cases and providers, run nothing")
    p.add_argument("--allow-slow", action="store_true",
                   help="run GPU-sized suites on the CPU anyway (hours; without it such a run "
                   "stops at once unless --case narrows it)")
    p.add_argument("--batch", type=lambda v: [int(b) for b in _csv(v)], default=None,
                   help=f"{e2e.E2E} only: comma list of batch sizes (default CUDA 64,128)")
    p.add_argument("--img-size", type=int, default=None,
                   help=f"{e2e.E2E} only: image size (default 224; 64 on the CPU with --quick)")
    return p.parse_args(argv)


def options(args: argparse.Namespace, command: str) -> Options:
    """Resolve defaults that depend on the device and --quick."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    suites = args.suite or (["paper", "large-kernel", "attention"] if cuda else ["cpu"])
    if args.dtype:
        dtypes = args.dtype
    elif cuda:
        dtypes = ["float16"] if args.quick else ["float16", "bfloat16", "float32"]
    else:
        dtypes = ["float32"]
    if args.layout:
        layouts = args.layout
    else:
        layouts = ["nchw"] if args.quick and not cuda else list(LAYOUTS)
    return Options(
        suites=_check(suites, SUITES, "suite"),
        dtypes=_check(dtypes, DTYPES, "dtype"),
        directions=_check(args.direction, DIRECTIONS, "direction"),
        layouts=_check(layouts, LAYOUTS, "layout"),
        device=device,
        providers=args.provider,
        case_filter=args.case,
        quick=args.quick,
        seed=args.seed,
        command=command,
        progress=not args.no_progress,
    )


#: the suites sized for a GPU (64-image batches of DWNet-T's stages, 31x31 kernels)
GPU_SUITES = ("paper", "large-kernel", "attention")


def cpu_warning(opts: Options) -> Optional[str]:
    """A warning when GPU-sized suites are asked for on the CPU (they run for hours there),
    with the command that fits; None otherwise.

    Example::

        >>> o = options(parse(["--suite", "paper", "--device", "cpu"]), "")
        >>> "hours" in cpu_warning(o)
        True
    """
    gpu = [s for s in opts.suites if s in GPU_SUITES]
    if opts.device.type != "cpu" or not gpu:
        return None
    items = sum(1 for _ in cases(gpu, opts.case_filter)) * len(opts.dtypes) * len(opts.layouts)
    return (f"warning: suite {','.join(gpu)} is sized for a GPU ({items} case settings of "
            f"64-image batches); on the CPU it runs for hours. The CPU suite: python -m "
            f"benchmarks --suite cpu --quick (about a minute); --case narrows a suite.")


def list_registry(opts: Options) -> str:
    """The cases and providers a run with these options would use."""
    lines = ["cases:"]
    lines += [f"  {c.suite:13} {c.name:32} op={c.op:9} weight={c.weight_shape}"
              for c in cases(opts.suites, opts.case_filter)]
    lines.append("providers:")
    lines += [f"  {p.name:20} {p.kind:9} {p.description}" for p in all_providers()]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmarks and print the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    command = "python -m benchmarks " + " ".join(argv)
    if args.suite and e2e.E2E in args.suite:
        if len(args.suite) > 1:
            raise SystemExit(f"run --suite {e2e.E2E} on its own (it writes its own results.json)")
        return e2e.main(args, command)
    opts = options(args, command)
    if args.list:
        print(list_registry(opts))
        return 0
    warning = cpu_warning(opts)
    if warning:
        if not (args.allow_slow or args.case):
            print(warning.replace("warning:", "error:", 1) + " (--allow-slow runs it anyway)",
                  file=sys.stderr, flush=True)
            return 2
        print(warning, file=sys.stderr, flush=True)
    opts.partial = Path(args.out) / PARTIAL
    env, records = run(opts)
    notes = write_all(args.out, env, records)
    opts.partial.unlink(missing_ok=True)  # results.json holds every record now
    for note in notes:
        print(note, file=sys.stderr)
    print(format_console(env, records))
    print(f"\nwrote {args.out}/results.json, results.md" + ("" if notes else ", results.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
