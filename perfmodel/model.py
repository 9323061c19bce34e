"""Evaluate one (case, dtype, layout, direction) on one backend: kernels, counts, times.

The CUDA backend's kernels come from :mod:`perfmodel.cuda_costs` (plans and
traces of the emulator, nvcc's SASS), the Triton backend's from
:mod:`perfmodel.triton_costs` (the JIT's specialisation, Triton's SASS); the
PyTorch kernels of a composite (scale, softmax, corr2d's split sum in the
Triton backend) are bandwidth-only. Each kernel is charged its compulsory
DRAM bytes: the first kernel of a primitive reads the operands and writes
the result (or corr2d's split workspace, which the second kernel reads back
before writing the result).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .emulator import Emulator, conn_call, corr_call
from .hardware import Gpu
from .predict import KernelCost, Prediction, combine, predict
from .workload import PrimitiveCall, TorchStep, Work, elem, geometry, numel, operand, result_role

#: ours (``fused``: the fused attention kernels, :mod:`perfmodel.fused_costs`, rows of the
#: ``attention`` suite only), then the peer: PyTorch's native depth-wise kernels
#: (:mod:`perfmodel.torch_native`)
BACKENDS = ("cuda", "triton", "fused", "torch")


@dataclass
class Evaluated:
    """One row of the model: a work item on a backend."""

    work: Work
    backend: str
    kernels: list[KernelCost]
    predictions: dict[str, Prediction]  # gpu key -> the whole call
    per_kernel: dict[str, list[Prediction]]  # gpu key -> each kernel
    tiles: list[dict] = field(default_factory=list)  # triton: fixed tile vs autotune candidates
    fixed: Optional[dict[str, Prediction]] = None  # triton with candidates: the fixed tiles' call


def _bytes(t) -> float:
    return float(t.numel() * t.element_size())


def _cuda_kernels(emu: Emulator, work: Work, step: PrimitiveCall, sm_count: int,
                  samples: int) -> list[KernelCost]:
    from .cuda_costs import launch_costs

    case, geo = work.case, geometry(work.case)
    ops = {r: operand(case, r, work.dtype, work.layout, "cpu") for r in (step.a, step.b)}
    a, b = ops[step.a], ops[step.b]
    if step.primitive == "corr2d":
        call = corr_call(a, b, case.weight_shape, geo)
    else:
        dst = operand(case, result_role(step.primitive), work.dtype, work.layout, "cpu")
        call = conn_call(step.primitive, a, b, dst, geo)
    result = _bytes(call.tensors["dst"])
    records = emu.plan(call, sm_count)
    if step.primitive == "corr2d" and records and records[0].body.startswith("Planes<"):
        # through pixels (csrc/plan.h plan_pixels): a and b read and written as pixels,
        # then corr_rows (and the split sum) on them
        ws = float(records[2].workspace_bytes) if len(records) > 2 else 0.0
        dram = [2 * _bytes(a), 2 * _bytes(b), _bytes(a) + _bytes(b) + (ws if ws else result)]
        dram += [ws + result] if ws else []
    elif any(r.body.startswith("Planes<") for r in records):
        dram = _planes_dram(records, _bytes(a), _bytes(b), result)
    else:
        ws = float(records[0].workspace_bytes) if records else 0.0
        first = _bytes(a) + _bytes(b) + (ws if ws else result)
        dram = [first, ws + result] if ws else [first]
    return launch_costs(emu, call, sm_count, dram, samples)


def _planes_dram(records: list, src: float, weight: float, result: float) -> list[float]:
    """Compulsory bytes of the route through planes (csrc/plan.h plan_planes): per chunk
    of samples, planes.cuh reads the chunk's pixels and writes its planes, the planes'
    kernel reads them (and the weight) and writes result planes, planes.cuh reads
    those and writes the pixels. The planes are charged as DRAM traffic although a chunk
    may stay in L2 between the kernels (an upper bound)."""
    chunks = sum(r.body.startswith("Planes<") for r in records) // 2
    out: list[float] = []
    for r in records:
        if r.body.startswith("Planes<"):
            first = len(out) % 3 == 0  # the chunk's input planes, else its result
            out.append(2 * (src if first else result) / chunks)
        else:
            out.append((src + weight + result) / chunks)
    return out


def _triton_kernels(work: Work, step: PrimitiveCall, gpu: Gpu, candidates: bool,
                    tiles: list[dict], fixed_out: list[KernelCost]) -> list[KernelCost]:
    from .triton_costs import tile_cost, tile_name
    from .triton_jit import launches

    case, geo = work.case, geometry(work.case)
    ops = {r: operand(case, r, work.dtype, work.layout, "meta") for r in (step.a, step.b)}
    names = {"conn2d": ("x", "w"), "conn2d_transpose": ("g", "w"), "corr2d": ("a", "b")}
    tensors = dict(zip(names[step.primitive], (ops[step.a], ops[step.b])))
    result = elem(work.dtype) * numel(
        case.weight_shape if step.primitive == "corr2d" else
        (case.shape if step.primitive == "conn2d_transpose" else
         (case.shape[0], case.shape[1], *case.out_size)))
    out: list[KernelCost] = []
    for tl in launches(step.primitive, tensors, geo, case.weight_shape, gpu.sms):
        splits = int(tl.args.get("SPLITS", 1))
        ws = float(tl.args["out"].numel() * tl.args["out"].element_size()) if splits > 1 else 0.0
        dram = _bytes(ops[step.a]) + _bytes(ops[step.b]) + (ws if ws else result)
        fixed = tile_cost(tl, tl.fixed, dram)
        options = [{"kernel": tl.kernel, "tile": tile_name(tl.fixed), "fixed": True,
                    "h200_us": predict(fixed, gpu).high_us, "cost": fixed}]
        if candidates:
            for tile in tl.candidates:
                if {k: tile.get(k) for k in tl.fixed} == tl.fixed:
                    continue
                c = tile_cost(tl, tile, dram)
                options.append({"kernel": tl.kernel, "tile": tile_name(tile), "fixed": False,
                                "h200_us": predict(c, gpu).high_us, "cost": c})
        best = min(options, key=lambda o: o["h200_us"])
        best["chosen"] = True
        for o in options:
            o.pop("cost") if o is not best else None
        out.append(best.pop("cost"))
        fixed_out.append(fixed)
        tiles.extend(options)
        if ws:
            split_sum = KernelCost("torch sum of the split partials", 0, 0, dram_bytes=ws + result)
            out.append(split_sum)
            fixed_out.append(split_sum)
    return out


def evaluate(emu: Optional[Emulator], work: Work, backend: str, gpus: dict[str, Gpu],
             candidates: bool = False, samples: int = 8) -> Evaluated:
    """The kernels of ``work`` on ``backend`` and their predicted times on each of ``gpus``.

    ``candidates``: also cost the Triton autotuner's tiles; the row then takes the
    best predicted one on the H200 (what autotuning would pick if the model is right),
    else the fixed tile (``LOCALCONN_TRITON_AUTOTUNE=0``).
    """
    ref = gpus.get("h200", next(iter(gpus.values())))
    kernels: list[KernelCost] = []
    fixed: list[KernelCost] = []  # the same call on Triton's fixed tiles
    tiles: list[dict] = []
    if backend == "fused":
        from .fused_costs import kernel_costs
        from .torch_native import Declined

        if work.case.op != "attention":
            raise Declined("the fused kernels compute whole attention only")
        kernels = kernel_costs(work)
    for step in work.steps if backend != "fused" else ():
        if isinstance(step, TorchStep):
            k = KernelCost(f"torch {step.name}", 0, 0, dram_bytes=step.bytes)
            kernels.append(k)
            fixed.append(k)
        elif backend == "cuda":
            assert emu is not None
            emu.set_smem_optin(ref.smem_per_block_optin)  # (the plan's as on that GPU)
            kernels += _cuda_kernels(emu, work, step, ref.sms, samples)
        elif backend == "torch":
            from .torch_native import kernel_cost

            kernels.append(kernel_cost(work, ref.sms))
        else:
            kernels += _triton_kernels(work, step, ref, candidates, tiles, fixed)
    per_kernel = {g: [predict(k, gpu) for k in kernels] for g, gpu in gpus.items()}
    total = {g: combine(parts) for g, parts in per_kernel.items()}
    fixed_total = None
    if backend == "triton" and candidates:
        fixed_total = {g: combine([predict(k, gpu) for k in fixed]) for g, gpu in gpus.items()}
    return Evaluated(work, backend, kernels, total, per_kernel, tiles, fixed_total)
