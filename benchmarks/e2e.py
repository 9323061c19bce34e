"""The ``e2e`` suite: whole models of :mod:`localconn.models`, images per second.

For every model, impl, mode, batch, dtype and layout one record:

* models: ``localconn.models.names()`` (``--case``: an exact name, or a substring);
* impls: ``localconn`` (the model on :class:`~localconn.LocalConn2d` /
  :class:`~localconn.LocalAttention2d`, auto backend) and ``torch`` (the
  same model built with the layers the original code used,
  ``create(name, layers="torch")``: ``nn.Conv2d`` depth-wise, the
  batch-folded grouped conv, the ``F.unfold`` formulation; the attention
  models have none);
* modes: ``infer`` (forward under ``no_grad``, eval mode) and ``train``
  (forward, cross-entropy, backward, SGD step, train mode); ``--direction
  fwd`` selects ``infer``, ``bwd``/``fwdbwd`` select ``train``;
* dtypes: ``bfloat16`` (``torch.autocast``; default on CUDA) or ``float32``;
* layouts: ``nchw`` or ``channels_last`` (model and input; both on CUDA, so
  the table shows where channels_last helps).

Correctness first: before timing, the localconn model and the torch model
get the same weights and must give the same float32 eval outputs
(``max|a - b| / max|b| <= 1e-2``, which TF32 convolutions on a GPU
stay well within and a wrong layer does not); a model that does not is ``wrong: ...``
and not timed. Timing: :mod:`benchmarks.timing` (CUDA events / wall clock)
after an untimed warm-up step, with a budget sized for whole steps.
``images_per_s = batch / median seconds``; ``speedup_vs_torch`` is the torch
impl's median time over this one's, same model/mode/batch/dtype/layout.

Sizes: on CUDA 224x224, batches 64 and 128 (64 with ``--quick``). On the CPU
``--quick`` runs tiny configurations (64x64, widths 16-128, one block per
stage, batch 2) so a smoke test takes seconds; without ``--quick`` the real
models at 224x224, batch 8. ``--batch`` and ``--img-size`` override.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .environment import environment
from .progress import Progress
from .timing import Budget, Timing, peak_memory_mb, time_cpu, time_cuda

#: the suite's name on the command line
E2E = "e2e"
IMPLS = ("localconn", "torch")
MODES = ("infer", "train")
E2E_DTYPES = ("bfloat16", "float32")
DIRECTION_MODE = {"fwd": "infer", "bwd": "train", "fwdbwd": "train"}

#: record fields, in schema order
FIELDS = (
    "suite", "model", "impl", "mode", "batch", "img_size", "dtype", "layout",
    "ms", "ms_p20", "ms_p80", "images_per_s", "speedup_vs_torch", "peak_mem_mb", "status",
)

#: largest max|a - b| / max|b| between the localconn and torch models (float32, eval)
SAME_TOLERANCE = 1e-2

#: tiny configurations (CPU --quick): every model's code path, seconds in all
TINY = {"img_size": 64, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_classes": 10}
TINY_EXTRA = {
    "idynamic": {"groups": 4},
    "attention": {"num_heads": (1, 2, 2, 4), "window_size": 4},
}


@dataclass
class E2EOptions:
    """What the e2e suite runs (the CLI's arguments, resolved)."""

    models: list[str]
    impls: list[str]
    modes: list[str]
    batches: list[int]
    img_size: int
    dtypes: list[str]
    layouts: list[str]
    device: torch.device
    tiny: bool = False
    quick: bool = False
    seed: int = 0
    command: str = ""
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def is_attention(name: str) -> bool:
    """The local-attention models (no original-layer version)."""
    return name.startswith(("swin", "nat"))


def model_kwargs(name: str, opts: E2EOptions) -> dict[str, Any]:
    """``create()`` arguments of ``name`` for this run (tiny or full size, no stochastic depth).

    Example::

        >>> opts = E2EOptions(["dwnet_tiny"], ["localconn"], ["infer"], [2], 64, ["float32"],
        ...                   ["nchw"], torch.device("cpu"), tiny=True)
        >>> model_kwargs("idynamic_dwnet_tiny", opts)["groups"]
        4
    """
    kw: dict[str, Any] = {"img_size": opts.img_size, "drop_path_rate": 0.0}
    if opts.tiny:
        kw.update(TINY, img_size=opts.img_size)
        if name.startswith("idynamic"):
            kw.update(TINY_EXTRA["idynamic"])
        if is_attention(name):
            kw.update(TINY_EXTRA["attention"])
    kw.update(opts.extra)
    return kw


def build(name: str, impl: str, kwargs: dict[str, Any]) -> nn.Module:
    """``localconn.models.create`` with ``layers="torch"`` for the torch impl.

    Raises ``NotImplementedError`` for the attention models' torch impl.
    """
    import localconn.models

    if impl == "torch":
        if is_attention(name):
            raise NotImplementedError("the local-attention models exist on localconn only")
        return localconn.models.create(name, layers="torch", **kwargs)
    return localconn.models.create(name, **kwargs)


def check_same(a: nn.Module, b: nn.Module, x: torch.Tensor) -> Optional[str]:
    """``None`` if ``a`` and ``b`` (same weights) agree in float32 eval mode, else why not."""
    a.eval(), b.eval()
    with torch.no_grad():
        ya, yb = a(x).float(), b(x).float()
    err = ((ya - yb).abs().max() / yb.abs().max().clamp_min(1e-12)).item()
    return None if err <= SAME_TOLERANCE else f"wrong: differs from the original layers by {err:.2e} (rel)"


def _autocast(device: torch.device, dtype: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def infer_call(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], object]:
    """One inference forward (eval mode, ``no_grad``, autocast for bfloat16)."""
    model.eval()

    def call() -> object:
        with torch.no_grad(), _autocast(x.device, dtype):
            return model(x)

    return call


def train_call(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: str
) -> Callable[[], object]:
    """One training step: forward, cross-entropy, backward, SGD (momentum 0.9) step."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def call() -> object:
        with _autocast(x.device, dtype):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return call


def budget(device: torch.device, quick: bool) -> Budget:
    """Measurement budget for whole steps (ms of warm-up and of measurement, reps)."""
    if device.type == "cuda":
        return Budget(300, 1500, 5, 200) if quick else Budget(1000, 5000, 10, 500)
    return Budget(0, 200, 2, 5) if quick else Budget(0, 3000, 3, 20)


def measure(call: Callable[[], object], device: torch.device, quick: bool) -> Timing:
    """Median and p20/p80 of ``call`` in ms (``call`` already warmed up)."""
    b = budget(device, quick)
    return time_cuda(call, b) if device.type == "cuda" else time_cpu(call, b)


def _record(**values: Any) -> dict:
    rec = dict.fromkeys(FIELDS)
    rec.update(suite="e2e", **values)
    return rec


def classify(e: BaseException) -> str:
    """A status line for an exception raised while building or running a model."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, NotImplementedError):
        return f"unsupported: {msg}"
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in msg.lower():
        return "error: out of memory"
    return f"error: {type(e).__name__}: {msg}"[:300]


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _models(name: str, opts: E2EOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """Build the impls of ``name`` on the device with shared weights; statuses of failures."""
    kwargs = model_kwargs(name, opts)
    built: dict[str, Any] = {}
    status: dict[str, str] = {}
    for impl in opts.impls:
        try:
            torch.manual_seed(opts.seed)
            built[impl] = build(name, impl, kwargs).to(opts.device)
        except Exception as e:
            status[impl] = classify(e)
    if "localconn" in built and "torch" in built:
        built["torch"].load_state_dict(built["localconn"].state_dict())
        gen = torch.Generator().manual_seed(opts.seed)
        x = torch.randn(2, 3, opts.img_size, opts.img_size, generator=gen).to(opts.device)
        try:
            problem = check_same(built["localconn"], built["torch"], x)
        except Exception as e:
            problem = classify(e)
        if problem:
            status["localconn"] = problem
    return built, status


def _time_one(
    model: nn.Module, mode: str, batch: int, dtype: str, layout: str, opts: E2EOptions
) -> dict[str, Any]:
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model.to(memory_format=memory_format)
    gen = torch.Generator().manual_seed(opts.seed)
    x = torch.randn(batch, 3, opts.img_size, opts.img_size, generator=gen)
    x = x.to(opts.device).contiguous(memory_format=memory_format)
    num_classes = getattr(model, "num_classes", 1000) or 1000
    y = torch.randint(0, num_classes, (batch,), generator=gen).to(opts.device)
    call = infer_call(model, x, dtype) if mode == "infer" else train_call(model, x, y, dtype)
    call()  # warm-up: autotuning, allocator, cuDNN algorithm search
    t = measure(call, opts.device, opts.quick)
    peak = peak_memory_mb(call, opts.device)
    return {"ms": t.ms, "ms_p20": t.p20, "ms_p80": t.p80, "images_per_s": batch * 1e3 / t.ms,
            "peak_mem_mb": peak, "status": "ok"}


def add_speedups(records: list[dict]) -> None:
    """Fill ``speedup_vs_torch`` (torch impl's time / this time, same setting)."""
    key = ("model", "mode", "batch", "dtype", "layout")
    torch_ms = {tuple(r[k] for k in key): r["ms"] for r in records
                if r["impl"] == "torch" and r["ms"] is not None}
    for r in records:
        base = torch_ms.get(tuple(r[k] for k in key))
        if base is not None and r["ms"]:
            r["speedup_vs_torch"] = base / r["ms"]


def run_e2e(opts: E2EOptions) -> tuple[dict, list[dict]]:
    """Run the suite; return ``(env, records)``."""
    env = environment(opts.device, 0.0, opts.command)
    env.pop("copy_gbps", None)
    settings = [(m, b, d, lay) for m in opts.modes for b in opts.batches
                for d in opts.dtypes for lay in opts.layouts]
    bar = Progress(len(opts.models) * len(opts.impls) * len(settings), enabled=opts.progress)
    records: list[dict] = []
    try:
        for name in opts.models:
            built, status = _models(name, opts)
            for impl in opts.impls:
                for mode, batch, dtype, layout in settings:
                    label = f"{name} {impl} {mode} b{batch} {dtype} {layout}"
                    bar.describe(label)
                    where = dict(model=name, impl=impl, mode=mode, batch=batch,
                                 img_size=opts.img_size, dtype=dtype, layout=layout)
                    values: dict[str, Any] = {"status": status.get(impl)}
                    if values["status"] is None:
                        try:
                            values = _time_one(built[impl], mode, batch, dtype, layout, opts)
                        except Exception as e:
                            values = {"status": classify(e)}
                        _free(opts.device)
                    records.append(_record(**where, **values))
                    bar.update(label)
            del built
            _free(opts.device)
    finally:
        bar.close()
    add_speedups(records)
    return env, records


def select_models(case: str) -> list[str]:
    """Models named by ``--case``: an exact name, or every name containing the string.

    Example::

        >>> select_models("dynamic_dwnet_tiny"), select_models("base")[:2]
        (['dynamic_dwnet_tiny'], ['dwnet_base', 'dynamic_dwnet_base'])
    """
    import localconn.models

    names = localconn.models.names()
    return [case] if case in names else [n for n in names if case in n]


def resolve(args: Any, command: str) -> E2EOptions:
    """E2E options from the CLI namespace of :mod:`benchmarks.__main__`."""
    import localconn.models

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    models = select_models(args.case)
    if not models:
        raise SystemExit(f"no model matches --case {args.case!r}: {localconn.models.names()}")
    impls = args.provider or list(IMPLS)
    bad = [p for p in impls if p not in IMPLS]
    if bad:
        raise SystemExit(f"e2e --provider takes {', '.join(IMPLS)}; got {bad}")
    modes = list(dict.fromkeys(DIRECTION_MODE[d] for d in args.direction))
    dtypes = args.dtype or (["bfloat16"] if cuda else ["float32"])
    bad = [d for d in dtypes if d not in E2E_DTYPES]
    if bad:
        raise SystemExit(f"e2e --dtype takes {', '.join(E2E_DTYPES)}; got {bad}")
    layouts = args.layout or (["nchw", "channels_last"] if cuda else ["nchw"])
    tiny = args.quick and not cuda
    batches = args.batch or ([64] if cuda and args.quick else [64, 128] if cuda else
                             [2] if tiny else [8])
    img_size = args.img_size or (TINY["img_size"] if tiny else 224)
    return E2EOptions(models, impls, modes, batches, img_size, dtypes, layouts, device,
                      tiny=tiny, quick=args.quick, seed=args.seed, command=command,
                      progress=not args.no_progress)


def describe(opts: E2EOptions) -> str:
    """What a run with these options would do (``--list``)."""
    lines = [f"e2e on {opts.device}: img {opts.img_size}, batches {opts.batches}, "
             f"dtypes {opts.dtypes}, layouts {opts.layouts}, modes {opts.modes}"
             + (" (tiny configurations)" if opts.tiny else ""), "models:"]
    lines += [f"  {m}" for m in opts.models]
    lines.append("impls: " + ", ".join(opts.impls))
    return "\n".join(lines)


def main(args: Any, command: str) -> int:
    """``python -m benchmarks --suite e2e ...``: run, write results.json/.md, print the table."""
    from .e2e_report import format_table, write_all

    opts = resolve(args, command)
    if args.list:
        print(describe(opts))
        return 0
    t0 = time.perf_counter()
    env, records = run_e2e(opts)
    env["seconds"] = round(time.perf_counter() - t0, 1)
    write_all(args.out, env, records)
    print(format_table(env, records))
    print(f"\nwrote {args.out}/results.json, results.md")
    return 0
