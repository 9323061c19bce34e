"""The calls that Nsight Compute profiles in the GPU check (the cost model's open questions).

    ncu --profile-from-start off --set full -o OUT/ncu python -m benchmarks.profile_cases
    python -m benchmarks.profile_cases --dry-run        # CPU: the same calls, tiny, no profiler

Each item is one call of a case (:data:`ITEMS`), run once untimed (Triton
compiles, the CUDA backend plans) and then once between
``torch.cuda.profiler.start()`` and ``stop()``, so that ``ncu
--profile-from-start off`` sees exactly one launch of each kernel.

What they are for (H200 check of 2026-12-04, ``benchmarks/results/nvidia-h200``;
``benchmarks/results/model/NOTES.md`` 2026-12-04 (6)):

* ``dw 56x56 NCHW fwd``: the model's dram-bound row at 36 % of the copy
  bandwidth (bytes in flight?);
* ``dw 14x14 channels_last fwd``: the batch kernels' tiles of two channels,
  7x the model (L1 lines against sectors, L2 traffic?);
* ``dw 56x56 channels_last fwd``: conn_mma_cl, the plan's new choice there;
* ``dyn-dw 7x7 NCHW weight-grad``: corr_reg at 4.6x the model;
* fused attention forward, NCHW and channels_last: 2.2-4.5x the model, and
  channels_last slower than NCHW.

Example (CPU, no profiler)::

    >>> from benchmarks.profile_cases import ITEMS
    >>> ITEMS[0].label
    'dw 64x96x56x56 k7 float16 nchw cuda fwd'
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .cases import Case, cases
from .kernel_times import localconn_calls, tiny
from .workload import Setting, fused_attention_op, make_inputs


@dataclass(frozen=True)
class Item:
    """One profiled call: a case of ``suite`` named ``case``, on ``backend`` ("fused":
    the fused attention forward), in one direction."""

    suite: str
    case: str
    dtype: str
    layout: str
    backend: str
    direction: str

    @property
    def label(self) -> str:
        return f"{self.case} {self.dtype} {self.layout} {self.backend} {self.direction}"


ITEMS: tuple[Item, ...] = (
    Item("paper", "dw 64x96x56x56 k7", "float16", "nchw", "cuda", "fwd"),
    Item("paper", "dw 64x96x56x56 k7", "float16", "channels_last", "cuda", "fwd"),
    Item("paper", "dw 64x384x14x14 k7", "float16", "channels_last", "cuda", "fwd"),
    Item("paper", "dw 64x384x14x14 k7", "float16", "nchw", "cuda", "fwd"),
    Item("paper", "dyn-dw 64x768x7x7 k7", "float16", "nchw", "cuda", "weight-grad"),
    Item("attention", "attention 64x96x56x56 k7 g3", "float16", "nchw", "fused", "fwd"),
    Item("attention", "attention 64x96x56x56 k7 g3", "float16", "channels_last", "fused", "fwd"),
)


def _case(item: Item) -> Case:
    for c in cases([item.suite]):
        if c.name == item.case:
            return c
    raise ValueError(f"item {item.label!r}: no case named {item.case!r} in suite {item.suite!r}")


@dataclass(frozen=True)
class Prepared:
    """An item's call: ``fn(*args)``."""

    fn: Callable[..., torch.Tensor]
    args: tuple[torch.Tensor, ...]

    def __call__(self) -> torch.Tensor:
        with torch.no_grad():
            return self.fn(*self.args)


def call_of(item: Item, device: torch.device, small: bool = False) -> Prepared:
    """``item``'s call on its inputs (``small``: the case at a tiny size)."""
    case = _case(item)
    if small:
        case = tiny(case)
    setting = Setting(device, getattr(torch, item.dtype), item.layout)
    if item.backend == "fused":
        if item.direction != "fwd":
            raise ValueError(f"item {item.label!r}: only the fused forward is profiled")
        inputs = make_inputs(case, setting)
        return Prepared(fused_attention_op(case), tuple(t.detach() for t in inputs.tensors))
    gen = torch.Generator(device=device).manual_seed(0)
    call = localconn_calls(case, setting, item.backend, gen)[item.direction]
    return Prepared(call.fn, call.args)


def run(items: tuple[Item, ...], device: torch.device, small: bool,
        profile: bool) -> list[str]:
    """Each item once untimed, then once inside the profiler's range (``profile``)."""
    done = []
    for item in items:
        fn = call_of(item, device, small)
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if profile:
            torch.cuda.profiler.start()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if profile:
            torch.cuda.profiler.stop()
        done.append(item.label)
        print(f"profile_cases: {item.label}", flush=True)
    return done


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_cases",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, tiny shapes, no profiler range (the CUDA items on the reference "
                   "backend, the fused ones through the Triton interpreter)")
    args = p.parse_args(argv)
    if args.dry_run:
        items = tuple(Item(i.suite, i.case, "float32", i.layout,
                           "reference" if i.backend == "cuda" else i.backend, i.direction)
                      for i in ITEMS)
        run(items, torch.device("cpu"), small=True, profile=False)
        return 0
    if not torch.cuda.is_available():
        print("profile_cases: no CUDA device (use --dry-run on the CPU)", file=sys.stderr)
        return 1
    run(ITEMS, torch.device("cuda"), small=False, profile=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ITEMS", "Item", "call_of", "run"]
