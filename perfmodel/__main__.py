"""Command line: ``python -m perfmodel`` (``make perf-model``).

    python -m perfmodel                          # every case, float16 + float32, both layouts
    python -m perfmodel --quick --check benchmarks/results/model/baseline.json   # CI
    python -m perfmodel --case "dw 64x96" --backend cuda --dtype float16
    python -m perfmodel --quick --write-baseline benchmarks/results/model/baseline.json

Writes ``perf-model.json`` and ``perf-model.md`` into ``--out`` and prints one
line per row. ``--quick`` is the CI subset: the first and third DWNet-T
stage of each paper mode, the 13x13 and 31x31 kernels and the attention
case, float16 only, Triton's fixed tiles; the full run also costs every
autotuning candidate and keeps the best.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

os.environ.pop("TRITON_INTERPRET", None)  # the model compiles for sm_90, it never interprets
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's default, without its warning

from benchmarks.cases import SUITES, cases  # noqa: E402

from . import report  # noqa: E402
from .hardware import GPUS  # noqa: E402
from .model import BACKENDS, evaluate  # noqa: E402
from .tools import nvcc, version  # noqa: E402
from .torch_native import Declined  # noqa: E402
from .workload import works  # noqa: E402

#: the CI subset (--quick): case names
QUICK = (
    "dw 64x96x56x56 k7", "dw 64x384x14x14 k7", "dyn-dw 64x96x56x56 k7", "dyn-dw 64x384x14x14 k7",
    "shared 64x96x56x56 k7 g32", "shared 64x384x14x14 k7 g32", "attn-corr 64x96x56x56 k7 g3",
    "attn-conn 64x96x56x56 k7 g3", "dw 64x384x32x32 k13", "dw 64x384x32x32 k31",
    "attention 64x96x56x56 k7 g3",
)


def _csv(v: str) -> list[str]:
    return [x.strip() for x in v.split(",") if x.strip()]


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m perfmodel", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", type=_csv, default=["paper", "large-kernel", "attention"])
    p.add_argument("--dtype", type=_csv, default=None, help="default float16,float32 "
                   "(float16 with --quick)")
    p.add_argument("--layout", type=_csv, default=["nchw", "channels_last"])
    p.add_argument("--backend", type=_csv, default=list(BACKENDS))
    p.add_argument("--direction", type=_csv, default=None, help="fwd,input-grad,weight-grad,bwd")
    p.add_argument("--case", default="", help="only cases whose name contains this")
    p.add_argument("--gpu", type=_csv, default=list(GPUS))
    p.add_argument("--quick", action="store_true", help="the CI subset (see above)")
    p.add_argument("--tiles", choices=("autotune", "fixed"), default=None,
                   help="Triton: the best predicted autotuning candidate (default) or the fixed "
                   "tile (LOCALCONN_TRITON_AUTOTUNE=0; the default with --quick, and what the GPU "
                   "check measures)")
    p.add_argument("--samples", type=int, default=8, help="blocks the emulator traces per launch")
    p.add_argument("--out", type=Path, default=Path("build/perf-model"))
    p.add_argument("--check", type=Path, default=None,
                   help="baseline JSON: fail when a row's predicted time grows > 10%%")
    p.add_argument("--write-baseline", type=Path, default=None)
    return p.parse_args(argv)


def _why_not(backend: str) -> Optional[str]:
    if backend == "cuda" and nvcc() is None:
        return "nvcc not found: the CUDA kernels cannot be compiled for sm_90 here"
    if backend == "torch":
        from .torch_native import why_not

        return why_not()
    if backend in ("triton", "fused"):
        try:
            from triton.backends.nvidia.compiler import get_ptxas  # noqa: F401
        except Exception as e:
            return f"Triton's NVIDIA toolchain is not importable ({type(e).__name__}: {e})"
    return None


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    import torch
    import triton

    from .emulator import Emulator

    dtypes = args.dtype or (["float16"] if args.quick else ["float16", "float32"])
    gpus = {g: GPUS[g] for g in args.gpu}
    candidates = (args.tiles or ("fixed" if args.quick else "autotune")) == "autotune"
    todo = [c for c in cases([s for s in args.suite if s in SUITES], args.case)
            if not args.quick or c.name in QUICK]
    backends = []
    for b in args.backend:
        why = _why_not(b)
        if why:
            print(f"perfmodel: skipping the {b} backend: {why}", file=sys.stderr)
        else:
            backends.append(b)
    emu = Emulator() if "cuda" in backends else None
    meta = {"command": "python -m perfmodel " + " ".join(sys.argv[1:] if argv is None else argv),
            "torch": torch.__version__, "triton": triton.__version__,
            "nvcc": version(nvcc()) if nvcc() else None, "gpus": list(gpus),
            "triton_tiles": "autotune" if candidates else "fixed"}
    records = []
    start = time.monotonic()
    for case in todo:
        for dtype in dtypes:
            for layout in args.layout:
                for work in works(case, dtype, layout):
                    if args.direction and work.direction not in args.direction:
                        continue
                    for backend in backends:
                        try:
                            e = evaluate(emu, work, backend, gpus, candidates=candidates,
                                         samples=args.samples)
                            rec = report.record(e, gpus)
                            print(report.summary_line(rec, "h200" if "h200" in gpus
                                                      else next(iter(gpus))), flush=True)
                        except Declined:  # no PyTorch kernel for the row: no peer row
                            continue
                        except Exception as exc:  # a row that cannot be modelled says why
                            rec = {"suite": case.suite, "case": case.name, "mode": case.mode,
                                   "dtype": dtype, "layout": layout, "backend": backend,
                                   "direction": work.direction,
                                   "error": f"{type(exc).__name__}: {exc}"[:500]}
                            print(f"perfmodel: {report.key(rec)}: {rec['error']}", file=sys.stderr)
                        records.append(rec)
    report.write(args.out, records, gpus, meta)
    print(f"perfmodel: {len(records)} rows in {time.monotonic() - start:.0f} s -> "
          f"{args.out}/perf-model.md, perf-model.json")
    rc = 0
    if args.write_baseline:
        args.write_baseline.parent.mkdir(parents=True, exist_ok=True)
        args.write_baseline.write_text(json.dumps({"meta": meta, "rows": report.baseline(records)},
                                                  indent=1, sort_keys=True) + "\n")
        print(f"perfmodel: baseline written to {args.write_baseline}")
    if args.check:
        base = json.loads(args.check.read_text())
        if base["meta"].get("triton") != meta["triton"] or base["meta"].get("nvcc") != meta["nvcc"]:
            print(f"perfmodel: the baseline was made with triton {base['meta'].get('triton')}, "
                  f"{base['meta'].get('nvcc')}; this run uses triton {meta['triton']}, "
                  f"{meta['nvcc']}: compiler changes move predictions too", file=sys.stderr)
        bad, notes = report.check(records, base["rows"])
        for n in notes:
            print(f"perfmodel: note: {n}")
        for b in bad:
            print(f"perfmodel: REGRESSION: {b}", file=sys.stderr)
        rc = 1 if bad else 0
        print(f"perfmodel: baseline check: {len(bad)} regression(s) over {len(records)} rows")
    return rc


if __name__ == "__main__":
    sys.exit(main())
