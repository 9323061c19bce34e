"""Host entry points of the Triton backend: allocate, pick flags and tiles, launch.

``conn2d(x, weight, bias, geo)``, ``conn2d_transpose(g, weight, geo)`` and
``corr2d(a, b, weight_shape, geo)`` have the signatures of
:mod:`localconn.reference` and receive validated arguments. Outputs are
allocated with ``torch.empty`` in the input's memory format and every
element is written by exactly one program (``corr2d``'s split partials go
to a float32 workspace that is summed over the split dim).

Importing this module imports Triton and defines the kernels; whether they
run compiled or in the interpreter is fixed then, by ``TRITON_INTERPRET``
(:data:`INTERPRETED`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch
import triton

from localconn.geometry import Geometry
from localconn.reference import memory_format_of

from . import configs
from .attention import LOG2E, WINDOWS, na_fwd_kernel
from .attention_backward import na_bwd_dkdv_kernel, na_bwd_dq_kernel
from .conn import conn_kernel
from .conn_transpose import conn_transpose_kernel
from .corr import corr_kernel
from .layout import (
    channels_last,
    group_aligned,
    image_strides,
    needs_int64,
    sm_count,
    weight_strides,
)
from .window import WINDOW_CODES

#: True if the kernels were defined for Triton's CPU interpreter
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
_INTERPRETER_LOCK = threading.Lock()  # the interpreter is not thread-safe

#: tests set this to force a number of ``corr2d`` reduction splits
FORCE_SPLITS: Optional[int] = None

#: programs per streaming multiprocessor that ``corr2d``'s split count aims for
PROGRAMS_PER_SM = 8

#: largest split workspace, in elements (float32: 256 MiB)
MAX_WORKSPACE = 2**26

_conn_tuned = triton.autotune(
    configs.CONN_CONFIGS,
    key=configs.CONN_KEY,
    prune_configs_by={"early_config_prune": configs.prune_tiles("Ho", "Wo")},
)(conn_kernel)
_conn_transpose_tuned = triton.autotune(
    configs.CONN_CONFIGS,
    key=configs.CONN_KEY,
    prune_configs_by={"early_config_prune": configs.prune_tiles("H", "W")},
)(conn_transpose_kernel)
_corr_tuned = triton.autotune(
    configs.CORR_CONFIGS,
    key=configs.CORR_KEY,
    prune_configs_by={"early_config_prune": configs.prune_corr},
)(corr_kernel)

Grid = Callable[[dict[str, Any]], tuple[int]]

#: the tile of the last launch, e.g. ``"fixed BC: 1, BH: 8, BW: 32, num_warps: 4"``
#: (read by benchmarks/kernel_times.py)
LAST_TILE: Optional[str] = None


def empty(*size: Any, **kwargs: Any) -> torch.Tensor:
    """``torch.empty``: every output and workspace comes from here (tests fill it with NaN)."""
    return torch.empty(*size, **kwargs)


def _launch(kernel: Any, tuned: Any, grid: Grid, args: dict[str, Any], fixed: dict[str, int],
            device: torch.device, tune: bool = True) -> None:
    """Autotuned launch, or the fixed tile when tuning is off (see :mod:`configs`).

    Runs on ``device`` (Triton launches on the current CUDA device).
    """
    global LAST_TILE
    # (Triton's interpreter patches triton.language while a kernel runs: one at a time)
    with _running(device):
        if tune and configs.tuning_enabled():
            tuned[grid](**args)
            LAST_TILE = f"tuned {tuned.best_config}"
            return
        LAST_TILE = "fixed " + ", ".join(f"{k}: {v}" for k, v in fixed.items())
        meta = dict(fixed)
        num_warps = meta.pop("num_warps")
        kernel[grid(meta)](**args, **meta, num_warps=num_warps, num_stages=1)


def _window_args(geo: Geometry) -> dict[str, Any]:
    h, w = geo.h, geo.w
    return {
        "SH": h.stride, "PH": h.pad_begin, "DH": h.dilation,
        "SW": w.stride, "PW": w.pad_begin, "DW": w.dilation,
        "KH": h.kernel, "KW": w.kernel, "WINDOW": WINDOW_CODES[geo.window],
    }


def _channel_tiles(C: int, cpg: int, bc: int, aligned: bool) -> int:
    """Host twin of :func:`tiles.channel_tiles`."""
    return (C // cpg) * triton.cdiv(cpg, bc) if aligned else triton.cdiv(C, bc)


def _image_grid(N: int, C: int, cpg: int, aligned: bool, rows: int, cols: int) -> Grid:
    def grid(meta: dict[str, Any]) -> tuple[int]:
        tiles = _channel_tiles(C, cpg, meta["BC"], aligned)
        return (N * tiles * triton.cdiv(rows, meta["BH"]) * triton.cdiv(cols, meta["BW"]),)

    return grid


def _weight_flags(weight: torch.Tensor, C: int, cl: bool) -> dict[str, Any]:
    cpg = C // weight.shape[1]
    return {
        "CPG": cpg,
        "GROUP_ALIGNED": group_aligned(cpg, cl),
        "W_H": weight.shape[4] > 1,
        "W_W": weight.shape[5] > 1,
        "CL": cl,
    }


def _transpose_masks(flags: dict[str, Any], window: str) -> dict[str, bool]:
    """Which dims the transposed kernel's weight address varies along (see its docstring)."""
    mask_h = flags["W_H"] or window != "sliding"
    mask_w = flags["W_W"] or window != "sliding"
    return {"MASK_H": mask_h, "MASK_W": mask_w,
            "W_MASKED": mask_h or mask_w or not flags["GROUP_ALIGNED"]}


def conn2d(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], geo: Geometry
) -> torch.Tensor:
    """``y[n, c, o] = bias[c] + sum_k W[n', g(c), k, o'] * x[n, c, i(o, k)]`` (see :mod:`conn`)."""
    N, C, H, W = x.shape
    Ho, Wo = geo.out_size
    y = empty((N, C, Ho, Wo), dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))
    cl = channels_last(x)
    flags = _weight_flags(weight, C, cl)
    args = {
        "x": x, "w": weight, "bias": x if bias is None else bias, "y": y,
        "C": C, "H": H, "W": W, "Ho": Ho, "Wo": Wo,
        **dict(zip(("sxn", "sxc", "sxh", "sxw"), image_strides(x))),
        **dict(zip(("swn", "swg", "swkh", "swkw", "swh", "sww"), weight_strides(weight))),
        "sb": 0 if bias is None else bias.stride(0),
        **dict(zip(("syn", "syc", "syh", "syw"), image_strides(y))),
        **_window_args(geo),
        **flags,
        "W_MASKED": flags["W_H"] or flags["W_W"] or not flags["GROUP_ALIGNED"],
        "HAS_BIAS": bias is not None,
        "BIG": needs_int64(x, weight, bias, y),
        "F64": x.dtype == torch.float64,
    }
    channels = flags["CPG"] if flags["GROUP_ALIGNED"] else C
    _launch(conn_kernel, _conn_tuned,
            _image_grid(N, C, flags["CPG"], flags["GROUP_ALIGNED"], Ho, Wo), args,
            configs.fixed_tile(cl, channels, Ho, Wo), x.device)
    return y


def conn2d_transpose(g: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """``x̄[n, c, i] = sum_{o, k : i(o, k) = i} W[n', g(c), k, o'] g[n, c, o]`` (a gather)."""
    N, C, Ho, Wo = g.shape
    H, W = geo.in_size
    out = empty((N, C, H, W), dtype=g.dtype, device=g.device, memory_format=memory_format_of(g))
    cl = channels_last(g)
    flags = _weight_flags(weight, C, cl)
    args = {
        "g_in": g, "w": weight, "out": out,
        "C": C, "H": H, "W": W, "Ho": Ho, "Wo": Wo,
        **dict(zip(("sgn", "sgc", "sgh", "sgw"), image_strides(g))),
        **dict(zip(("swn", "swg", "swkh", "swkw", "swh", "sww"), weight_strides(weight))),
        **dict(zip(("son", "soc", "soh", "sow"), image_strides(out))),
        **_window_args(geo),
        **flags,
        **_transpose_masks(flags, geo.window),
        "BIG": needs_int64(g, weight, out),
        "F64": g.dtype == torch.float64,
    }
    channels = flags["CPG"] if flags["GROUP_ALIGNED"] else C
    _launch(conn_transpose_kernel, _conn_transpose_tuned,
            _image_grid(N, C, flags["CPG"], flags["GROUP_ALIGNED"], H, W), args,
            configs.fixed_tile(cl, channels, H, W), g.device)
    return out


def corr_splits(device: torch.device, reduce: dict[str, bool], N: int, C: int, cpg: int,
                taps: int, Ho: int, Wo: int, out_numel: int) -> int:
    """How many ranges to cut ``corr2d``'s reduction into (independent of the tile).

    Enough programs to fill the GPU (``PROGRAMS_PER_SM`` per SM), estimated
    with a nominal ``[1, 32, 8, 16]`` tile; never more than the reduction's
    steps, and the workspace stays under :data:`MAX_WORKSPACE`. One split
    outside CUDA (the interpreter runs programs one by one).
    """
    if FORCE_SPLITS is not None:
        return FORCE_SPLITS
    if device.type != "cuda":
        return 1
    rows, cols = triton.cdiv(Ho, 8), triton.cdiv(Wo, 16)
    tiles = (
        (1 if reduce["REDUCE_N"] else N)
        * (C // cpg if reduce["REDUCE_C"] else C)
        * triton.cdiv(taps, 32)
        * (1 if reduce["REDUCE_H"] else rows)
        * (1 if reduce["REDUCE_W"] else cols)
    )
    steps = (
        (N if reduce["REDUCE_N"] else 1)
        * (cpg if reduce["REDUCE_C"] else 1)
        * (rows if reduce["REDUCE_H"] else 1)
        * (cols if reduce["REDUCE_W"] else 1)
    )
    want = triton.cdiv(PROGRAMS_PER_SM * sm_count(device), tiles)
    return max(1, min(steps, want, MAX_WORKSPACE // max(1, out_numel)))


def _corr_grid(N: int, C: int, cpg: int, taps: int, Ho: int, Wo: int, splits: int,
               reduce: dict[str, bool]) -> Grid:
    def grid(meta: dict[str, Any]) -> tuple[int]:
        ct = C // cpg if reduce["REDUCE_C"] else triton.cdiv(C, meta["BC"])
        nt = 1 if reduce["REDUCE_N"] else N
        ht = 1 if reduce["REDUCE_H"] else triton.cdiv(Ho, meta["BH"])
        wt = 1 if reduce["REDUCE_W"] else triton.cdiv(Wo, meta["BW"])
        return (splits * nt * ct * triton.cdiv(taps, meta["BT"]) * ht * wt,)

    return grid


def corr2d(
    a: torch.Tensor, b: torch.Tensor, weight_shape: Sequence[int], geo: Geometry
) -> torch.Tensor:
    """``Ŵ[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)]`` over the broadcast dims."""
    Nw, Cw, Kh, Kw, Hw, Ww = (int(s) for s in weight_shape)
    N, C, Ho, Wo = a.shape
    H, W = b.shape[2:]
    cpg, taps = C // Cw, Kh * Kw
    out = empty((Nw, Cw, Kh, Kw, Hw, Ww), dtype=a.dtype, device=a.device)
    reduce = {
        "REDUCE_N": Nw == 1 and N > 1,
        "REDUCE_C": cpg > 1,
        "REDUCE_H": Hw == 1 and Ho > 1,
        "REDUCE_W": Ww == 1 and Wo > 1,
    }
    splits = corr_splits(a.device, reduce, N, C, cpg, taps, Ho, Wo, out.numel())
    if splits == 1:
        target = out.view(1, Nw, Cw, taps, Hw, Ww)
    else:
        acc = torch.float64 if a.dtype == torch.float64 else torch.float32
        target = empty((splits, Nw, Cw, taps, Hw, Ww), dtype=acc, device=a.device)
    cl = channels_last(a)
    args = {
        "a": a, "b": b, "out": target,
        "N": N, "C": C, "H": H, "W": W, "Ho": Ho, "Wo": Wo, "CPG": cpg, "SPLITS": splits,
        **dict(zip(("san", "sac", "sah", "saw"), image_strides(a))),
        **dict(zip(("sbn", "sbc", "sbh", "sbw"), image_strides(b))),
        **dict(zip(("sos", "son", "sog", "sot", "soh", "sow"), target.stride())),
        **_window_args(geo),
        **reduce,
        "CL": cl,
        "BIG": needs_int64(a, b, target),
        "F64": a.dtype == torch.float64,
    }
    channels = cpg if reduce["REDUCE_C"] else C
    # The tile fixes corr2d's summation order: with deterministic algorithms on, use the
    # fixed tile, not whichever one the autotuner timed fastest in this process.
    _launch(corr_kernel, _corr_tuned, _corr_grid(N, C, cpg, taps, Ho, Wo, splits, reduce),
            args, configs.fixed_corr_tile(cl, channels, taps, Ho, Wo), a.device,
            tune=not torch.are_deterministic_algorithms_enabled())
    if splits > 1:
        out.copy_(target.sum(dim=0).view(out.shape))
    return out


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, triton.next_power_of_2(n))


@contextlib.contextmanager
def _running(device: torch.device):
    """Kernels launched inside run on ``device``, one at a time under the interpreter."""
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    serial = _INTERPRETER_LOCK if INTERPRETED else contextlib.nullcontext()
    with guard, serial:
        yield


def _attention_common(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      rpb: Optional[torch.Tensor], heads: int, kernel: tuple[int, int],
                      dilation: tuple[int, int], window: str, shift: tuple[int, int],
                      scale: float) -> tuple[tuple[int, int, int], dict[str, Any], dict[str, Any]]:
    """What the fused kernels share: the grid (8 x 8 tiles of each dilation group, per batch
    and head), the runtime arguments of q, k, v and rpb, and the constexprs."""
    B, C, H, W = q.shape
    D, Dv = C // heads, v.shape[1] // heads
    BH = BW = 8
    tiles_w = triton.cdiv(triton.cdiv(W, dilation[1]), BW)
    tiles = triton.cdiv(triton.cdiv(H, dilation[0]), BH) * tiles_w
    args = {
        "q": q, "k": k, "v": v, "rpb": rpb if rpb is not None else q,
        "H": H, "W": W, "HEADS": heads, "DIL_H": dilation[0], "DIL_W": dilation[1],
        "SHIFT_H": shift[0], "SHIFT_W": shift[1], "TILES_W": tiles_w,
        **dict(zip(("sqb", "sqc", "sqh", "sqw"), image_strides(q))),
        **dict(zip(("skb", "skc", "skh", "skw"), image_strides(k))),
        **dict(zip(("svb", "svc", "svh", "svw"), image_strides(v))),
        **dict(zip(("srh", "sry", "srx"), rpb.stride() if rpb is not None else (0, 0, 0))),
        "qk_scale": scale * LOG2E,
    }
    interpreted_bf16 = INTERPRETED and q.dtype == torch.bfloat16
    meta = {
        "D": D, "DV": Dv, "BD": _pow2(D), "BDV": _pow2(Dv), "KH": kernel[0], "KW": kernel[1],
        "WINDOW": WINDOWS[window], "HAS_RPB": rpb is not None,
        "IEEE": q.dtype == torch.float32 or interpreted_bf16, "DOT_F32": interpreted_bf16,
        "BH": BH, "BW": BW,
    }
    return (tiles, B * heads, dilation[0] * dilation[1]), args, meta


def _span(kernel: tuple[int, int]) -> int:
    """Columns of a key (query) block: the halo of 8 columns' windows, at most 16."""
    return min(16, _pow2(8 + kernel[1] - 1, floor=8))


def neighborhood_attention_launch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rpb: Optional[torch.Tensor],
    out: torch.Tensor, lse: torch.Tensor, heads: int, kernel: tuple[int, int],
    dilation: tuple[int, int], window: str, shift: tuple[int, int], scale: float,
) -> tuple[tuple[int, int, int], dict[str, Any], dict[str, Any]]:
    """The fused kernel's grid, runtime arguments and constexprs (with ``num_warps``).

    Tile: 8 x 8 queries (``BM = 64`` rows of ``tl.dot``) against key blocks of
    ``KBH x KBW = 32`` keys (float32, whose exact IEEE dot runs on FMA units: 16), 4
    warps (8 for head dims above 64): the sm_90 builds hold 121-146 registers at head
    dim 32, about 220 at 128, and no stack (``.ci/triton-resources`` checks it). The
    model preferred 4 warps to 8 (float16 channels_last stage 1: 70-88 against 99-123
    us predicted; NOTES 2026-12-04 (5)).
    """
    grid, args, meta = _attention_common(q, k, v, rpb, heads, kernel, dilation, window, shift,
                                         scale)
    f32 = q.dtype == torch.float32
    kbw = _span(kernel)
    args.update({"out": out, "lse": lse,
                 **dict(zip(("sob", "soc", "soh", "sow"), image_strides(out)))})
    meta.update({"KBH": (16 if f32 else 32) // kbw, "KBW": kbw,
                 "num_warps": 8 if max(meta["D"], meta["DV"]) > 64 and not f32 else 4})
    return grid, args, meta


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           rpb: Optional[torch.Tensor], heads: int, kernel: tuple[int, int],
                           dilation: tuple[int, int], window: str, shift: tuple[int, int],
                           scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused neighborhood attention (see :mod:`attention`) on ``(B, heads * D, H, W)`` images:
    the output ``(B, heads * Dv, H, W)`` (``v``'s memory format) and the float32 log-sum-exp
    ``(B, heads, H, W)``."""
    B, _, H, W = q.shape
    out = empty(v.shape, dtype=v.dtype, device=v.device, memory_format=memory_format_of(v))
    lse = empty((B, heads, H, W), dtype=torch.float32, device=q.device)
    grid, args, meta = neighborhood_attention_launch(q, k, v, rpb, out, lse, heads, kernel,
                                                     dilation, window, shift, scale)
    with _running(q.device):
        na_fwd_kernel[grid](**args, **meta)
    return out, lse


def neighborhood_attention_backward_launch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rpb: Optional[torch.Tensor],
    dout: torch.Tensor, lse: torch.Tensor, delta: torch.Tensor, dq: torch.Tensor,
    dk: torch.Tensor, dv: torch.Tensor, drpb: Optional[torch.Tensor], heads: int,
    kernel: tuple[int, int], dilation: tuple[int, int], window: str, shift: tuple[int, int],
    scale: float,
) -> list[tuple[Any, tuple[int, int, int], dict[str, Any], dict[str, Any]]]:
    """The two backward kernels' (kernel, grid, arguments, constexprs): dq (and drpb), then
    dk and dv. Tiles as the forward's (the key tile's query halo spans ``BW + Kw - 1``
    columns), 16 keys or queries a block above head dim 64 (float32: 16 keys, 8 queries);
    4 warps up to head dim 64, else 8 (the float32 dk / dv kernel on 8: on 4, or with 16
    queries a block, it spilled 16-24 bytes). sm_90: 98-179 registers at head dim 32,
    up to 217 at 128, no stack (``.ci/triton-resources``)."""
    grid, common, meta = _attention_common(q, k, v, rpb, heads, kernel, dilation, window,
                                           shift, scale)
    f32 = q.dtype == torch.float32
    D, Dv = meta["D"], meta["DV"]
    common.update({"dout": dout, "lse": lse, "delta": delta, "scale": scale,
                   **dict(zip(("sgb", "sgc", "sgh", "sgw"), image_strides(dout)))})
    meta["num_warps"] = 8 if max(D, Dv) > 64 else 4
    keys = 16 if f32 or D > 64 else 32  # (the dq kernel at head dim 128 spilled with 32)
    span = _span(kernel)
    dq_args = {**common, "dq": dq, "drpb": drpb if drpb is not None else lse,
               **dict(zip(("sdb", "sdc", "sdh", "sdw"), image_strides(dq))),
               **dict(zip(("sgrh", "sgry", "sgrx"),
                          drpb.stride() if drpb is not None else (0, 0, 0)))}
    dkdv_args = {**common, "dk": dk, "dv_out": dv,
                 **dict(zip(("skgb", "skgc", "skgh", "skgw"), image_strides(dk))),
                 **dict(zip(("svgb", "svgc", "svgh", "svgw"), image_strides(dv)))}
    return [
        (na_bwd_dq_kernel, grid, dq_args,
         {**meta, "RPB_GRAD": drpb is not None, "KBH": keys // span, "KBW": span}),
        (na_bwd_dkdv_kernel, grid, dkdv_args,  # (float32: 8 queries a block, 16 spilled)
         {**meta, "QBH": 1 if f32 else keys // span, "QBW": 8 if f32 else span,
          "num_warps": 8 if f32 or max(D, Dv) > 64 else 4}),
    ]


def neighborhood_attention_backward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rpb: Optional[torch.Tensor],
    out: torch.Tensor, lse: torch.Tensor, dout: torch.Tensor, heads: int,
    kernel: tuple[int, int], dilation: tuple[int, int], window: str, shift: tuple[int, int],
    scale: float, rpb_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """dq, dk, dv (the inputs' memory formats) and the float32 drpb (or ``None``) of the fused
    attention (see :mod:`attention_backward`)."""
    delta = (dout.float() * out.float()).unflatten(1, (heads, -1)).sum(2).contiguous()
    dq, dk, dv = (empty(t.shape, dtype=t.dtype, device=t.device,
                        memory_format=memory_format_of(t)) for t in (q, k, v))
    drpb = torch.zeros(rpb.shape, dtype=torch.float32, device=q.device) if rpb_grad else None
    launches = neighborhood_attention_backward_launch(
        q, k, v, rpb, dout, lse, delta, dq, dk, dv, drpb, heads, kernel, dilation, window, shift,
        scale)
    with _running(q.device):
        for kernel_fn, grid, args, meta in launches:
            kernel_fn[grid](**args, **meta)
    return dq, dk, dv, drpb
