"""The Triton backend's real launches, compiled for sm_90 with the JIT's own specialisation.

No GPU is needed: Triton's active driver is replaced by one that reports
an sm_90 target, and ``knobs.runtime.jit_cache_hook`` stops the JIT right
where it would compile, handing over the signature, the constexprs and the
integer/pointer specialisation (divisibility by 16, equality to 1) that it
computed from the real arguments. The launch code of
``localconn.triton_kernels.launch`` runs unchanged on ``meta`` tensors of
the case's shapes and layouts (its ``_launch`` is intercepted to learn the
kernel, the grid, the fixed tile and the autotuner), with the GPU's
multiprocessor count for corr2d's split. Each tile is then compiled with
``triton.compile`` for ``GPUTarget("cuda", 90, 32)``: the cubin the GPU's
JIT would build, whose SASS and resource usage the model reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from localconn.geometry import Geometry

from .tools import ROOT, write_atomic

CACHE = ROOT / "build" / "perf-model" / "triton"


@dataclass
class TritonLaunch:
    """One kernel launch of the Triton backend, and the tiles it can run with."""

    kernel: str  # conn_kernel, conn_transpose_kernel, corr_kernel
    args: dict[str, Any]  # the launch's arguments (tensors on the meta device)
    fixed: dict[str, int]  # the tile used without autotuning (num_warps included)
    candidates: list[dict[str, int]]  # the autotuner's configs after pruning
    grid: Any  # meta -> (programs,)
    fn: Any = field(repr=False, default=None)  # the @triton.jit function

    def programs(self, tile: dict[str, int]) -> int:
        return int(self.grid(tile)[0])


@dataclass
class Compiled:
    """A compiled tile: its cubin and the JIT's view of it."""

    name: str
    tile: dict[str, int]
    cubin: Path
    num_warps: int
    shared: int  # bytes of shared memory Triton allocates (static)


class _Sm90Driver:
    """Enough of a Triton driver for the JIT to specialise and compile for sm_90."""

    def __init__(self) -> None:
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", 90, 32)

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: Optional[int] = None) -> int:
        return 0

    def get_current_target(self) -> Any:
        return self.target

    def is_active(self) -> bool:
        return True


@contextlib.contextmanager
def _sm90() -> Iterator[list[dict]]:
    from triton import knobs
    from triton.runtime import driver

    captured: list[dict] = []

    def hook(*, compile: dict, fn: Any, **_: Any) -> bool:
        captured.append({"compile": compile, "fn": fn.jit_function})
        return True  # do not compile or launch

    old_hook, old_driver = knobs.runtime.jit_cache_hook, getattr(driver, "_active", None)
    driver.set_active(_Sm90Driver())
    knobs.runtime.jit_cache_hook = hook
    try:
        yield captured
    finally:
        knobs.runtime.jit_cache_hook = old_hook
        driver._active = old_driver  # reset_active() would probe for a GPU


def launches(primitive: str, tensors: dict[str, torch.Tensor], geo: Geometry,
             weight_shape: Optional[tuple[int, ...]], sm_count: int) -> list[TritonLaunch]:
    """The Triton kernel launches of one primitive call (meta tensors)."""
    from localconn.triton_kernels import launch

    recorded: list[TritonLaunch] = []

    def record(kernel: Any, tuned: Any, grid: Any, args: dict, fixed: dict, device: Any,
               tune: bool = True) -> None:
        named = dict(args)
        candidates = [dict(c.all_kwargs()) for c in
                      tuned.early_config_prune(tuned.configs, named)] if tune else []
        recorded.append(TritonLaunch(kernel.fn.__name__, dict(args), dict(fixed), candidates,
                                     grid, kernel))

    cuda = types.SimpleNamespace(type="cuda", index=0)
    real_splits = launch.corr_splits
    saved = (launch._launch, launch.sm_count, launch.corr_splits)
    launch._launch = record
    launch.sm_count = lambda device: sm_count
    launch.corr_splits = lambda device, *a: real_splits(cuda, *a)
    try:
        if primitive == "conn2d":
            launch.conn2d(tensors["x"], tensors["w"], None, geo)
        elif primitive == "conn2d_transpose":
            launch.conn2d_transpose(tensors["g"], tensors["w"], geo)
        else:
            launch.corr2d(tensors["a"], tensors["b"], weight_shape, geo)
    finally:
        launch._launch, launch.sm_count, launch.corr_splits = saved
    return recorded


def _spec(fn: Any, args: dict[str, Any], tile: dict[str, int]) -> dict:
    """The JIT's compile request for ``fn(**args)`` with ``tile`` (constexprs, num_warps)."""
    meta = dict(tile)
    warps = meta.pop("num_warps", 4)
    meta.pop("num_stages", None)
    meta.pop("num_ctas", None)
    with _sm90() as captured:
        fn.run(**args, **meta, num_warps=warps, num_stages=1, grid=(1,), warmup=True)
    if not captured:
        raise RuntimeError(f"{fn.__name__}: the JIT did not ask to compile")
    return captured[-1]


def compile_jit(fn: Any, args: dict[str, Any], tile: dict[str, int], name: str = "") -> Compiled:
    """Compile the @triton.jit ``fn`` for ``args`` (tensors may be on the meta device) and
    ``tile`` for sm_90, as the JIT would; cached on disk by the JIT's own request."""
    import triton
    from triton.compiler import ASTSource

    req = _spec(fn, args, tile)
    c, jit = req["compile"], req["fn"]
    name = name or jit.__name__
    key = json.dumps([c["specialization_data"], triton.__version__], sort_keys=True, default=str)
    digest = hashlib.sha256((key + jit.cache_key).encode()).hexdigest()[:20]
    cubin = CACHE / f"{name}-{digest}.cubin"
    info = cubin.with_suffix(".json")
    if not cubin.exists() or not info.exists():
        with _sm90():
            options = {k: c[k] for k in ("num_warps", "num_ctas", "num_stages",
                                         "enable_fp_fusion", "launch_cooperative_grid") if k in c}
            k = triton.compile(ASTSource(jit, c["signature"], c["constants"], c["configs"][0]),
                               target=_Sm90Driver().target, options=options)
        CACHE.mkdir(parents=True, exist_ok=True)
        write_atomic(info, json.dumps({"shared": int(getattr(k.metadata, "shared", 0)),
                                 "num_warps": int(c["num_warps"])}).encode())
        write_atomic(cubin, k.asm["cubin"])
    meta = json.loads(info.read_text())
    return Compiled(name, dict(tile), cubin, meta["num_warps"], meta["shared"])


def compile_tile(tl: TritonLaunch, tile: dict[str, int]) -> Compiled:
    """Compile the launch ``tl`` with ``tile`` for sm_90."""
    return compile_jit(tl.fn, tl.args, tile, tl.kernel)
