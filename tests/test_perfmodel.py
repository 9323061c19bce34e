"""The cost model's own counters (perfmodel/) on inputs whose answers are known.

* SASS parsing: blocks, edges, calls, classes, widths, multiply-add lanes and
  inline chains of a hand-written listing;
* block counts: a loop pinned by an anchor, one no anchor reaches, a guard;
* known-cost CUDA kernels (csrc/model/known.cuh) through the whole CUDA path
  (emulator trace, nvcc's SASS, block counts): a copy (one 4-byte load and
  store per element), a chain of 64 multiply-adds, strided shared-memory
  reads whose bank conflicts are 1, 2 and 32-way, strided global loads, and
  asynchronous copies to shared memory (cp.async: bytes in flight until the wait);
* Triton: a copy kernel compiled with the JIT's own specialisation;
* the time model, occupancy and the baseline check.

A broken counter (a wrong width, a missed wavefront, a loop counted the wrong
number of times) changes one of these exact numbers.
"""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("scipy")

from perfmodel import flow, predict, report, sass  # noqa: E402
from perfmodel.counts import count  # noqa: E402
from perfmodel.hardware import H200, occupancy  # noqa: E402
from perfmodel.tools import nvcc  # noqa: E402

LISTING = """
        .global         k
k:
.text.k:
	//## File "/x/a.cuh", line 10 inlined at "/x/launch.cuh", line 32
	//## File "/x/launch.cuh", line 32
        /*0000*/                   S2R R0, SR_TID.X ;
        /*0010*/                   ISETP.GE.AND P0, PT, R0, 0x20, PT ;
        /*0020*/               @P0 EXIT ;
.L_x_0:
	//## File "/x/portable.h", line 5 inlined at "/x/a.cuh", line 12
	//## File "/x/a.cuh", line 12 inlined at "/x/launch.cuh", line 32
	//## File "/x/launch.cuh", line 32
        /*0030*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
	//## File "/x/a.cuh", line 13 inlined at "/x/launch.cuh", line 32
	//## File "/x/launch.cuh", line 32
        /*0040*/                   FFMA R8, R4, R5, R8 ;
        /*0050*/                   HFMA2 R9, R6, R7, R9 ;
        /*0060*/                   HFMA2.MMA R10, -RZ, RZ, 0, 0 ;
        /*0070*/                   LDS.U16 R11, [R12] ;
        /*0080*/                   IADD3 R0, R0, 0x1, RZ ;
        /*0090*/                   ISETP.NE.AND P1, PT, R0, 0x40, PT ;
        /*00a0*/               @P1 BRA `(.L_x_0) ;
        /*00b0*/                   CALL.REL.NOINC `($__internal_0_div) ;
        /*00c0*/                   STG.E [R2.64], R8 ;
        /*00d0*/                   EXIT ;
$__internal_0_div:
        /*00e0*/                   IMAD R1, R1, R1, RZ ;
        /*00f0*/                   RET.REL.NODEC R20 `(k) ;
.L_x_1:
        /*0100*/                   BRA `(.L_x_1);
        /*0110*/                   NOP;
"""

needs_nvcc = pytest.mark.skipif(nvcc() is None or shutil.which("g++") is None,
                                reason="needs nvcc and g++ (the CUDA path of the model)")


def _kernel() -> sass.Function:
    return sass.parse(LISTING)["k"]


def test_sass_blocks_edges_and_classes() -> None:
    f = _kernel()
    assert len(f.instrs) == 16  # the BRA-self + NOP padding is dropped
    assert [len(b.instrs) for b in f.blocks] == [3, 8, 1, 2, 2]
    entry, loop, call, tail, sub = f.blocks
    assert entry.exits and entry.succ == [1]  # @P0 EXIT falls through
    assert sorted(loop.succ) == [1, 2]  # back edge and fallthrough
    assert call.calls == "$__internal_0_div" and f.block_of(call.calls) == 4
    assert tail.exits and not tail.succ and sub.returns
    ldg, ffma, hfma2, zero, lds = f.instrs[3:8]
    assert ldg.memory == ("global", True, False, 16) and lds.memory == ("shared", True, False, 2)
    assert (ffma.fma_lanes, hfma2.fma_lanes, zero.fma_lanes) == (1, 2, 0)
    assert (ffma.cls, hfma2.cls, f.instrs[8].cls, f.instrs[0].cls) == ("fp32", "fp16x2", "int", "int")
    assert ldg.site == "portable.h:5<a.cuh:12" and ffma.site == "a.cuh:13"


def test_tensor_instructions_in_hmma_units() -> None:
    """HMMA.16816 is the tensor term's unit; Hopper's warpgroup HGMMA.64xNxK does 64 N K
    multiply-adds over its 4 warps (N / 8 units a warp); the rest none."""
    def ins(op: str) -> sass.Instr:
        return sass.Instr(0, op, "")

    assert ins("HMMA.16816.F32").mma_macs == 2048 and ins("HMMA.16816.F32").mma_units == 1
    assert ins("HMMA.1688.F32").mma_units == 0.5
    assert ins("HGMMA.64x16x16.F32").mma_macs == 64 * 16 * 16 // 4
    assert ins("HGMMA.64x64x16.F32").mma_units == 8
    assert ins("FFMA").mma_macs == 0


def test_fused_attention_rows_are_in_the_table() -> None:
    """The committed table has the fused attention rows of both directions, dtypes and layouts,
    each with its multiply-add anchor met (no note: the host's replay of the halo blocks
    matches the SASS loops)."""
    import json
    from pathlib import Path

    table = Path(__file__).resolve().parent.parent / "benchmarks/results/model/perf-model.json"
    rows = [r for r in json.loads(table.read_text())["records"] if r["backend"] == "fused"]
    assert {(r["case"], r["dtype"], r["layout"], r["direction"]) for r in rows} == {
        (c, d, lay, dr) for c in ("attention 64x96x56x56 k7 g3", "attention 64x96x56x56 k7 g3 block")
        for d in ("float16", "float32") for lay in ("nchw", "channels_last") for dr in ("fwd", "bwd")}
    for r in rows:
        for k in r["kernels"]:
            assert not k["notes"], (r["direction"], k["name"], k["notes"])


def test_flow_pins_a_loop_with_an_anchor() -> None:
    f = _kernel()
    # 40 bytes per lane from the LDG.E.128 at portable.h:5 (16 B each): 2.5 turns per warp
    anchor = flow.Anchor("ldg", {1: 16.0}, 40.0)
    res = flow.solve(f, [anchor])
    assert res.counts[1] == pytest.approx(2.5)
    assert res.counts[0] == pytest.approx(1.0)
    assert res.counts[4] == pytest.approx(res.counts[2])  # the subroutine runs once per call
    assert res.residuals["ldg"] == pytest.approx(0.0, abs=1e-9)
    c = count(f, res.counts, {})
    assert c.mul_lanes == pytest.approx(2.5 * 3)  # FFMA (1) + HFMA2 (2) per turn
    assert c.memory["global_ld"] == pytest.approx(2.5)
    assert c.lane_bytes["shared_ld"] == pytest.approx(2.5 * 2)


def test_flow_without_anchors_runs_loops_once() -> None:
    res = flow.solve(_kernel(), [])
    assert res.counts[1] == pytest.approx(1.0, abs=1e-6)
    assert res.unanchored_loops == ["portable.h:5"]


def test_predicated_anchor_bounds_from_one_side() -> None:
    f = _kernel()
    # all the loop's bytes count as an upper bound only (a predicated load): >= 32 bytes
    anchor = flow.Anchor("ldg", {1: 16.0}, 32.0, sure={})
    res = flow.solve(f, [anchor])
    assert res.counts[1] >= 2.0 - 1e-6
    assert res.residuals["ldg"] == pytest.approx(0.0, abs=1e-9)


#: __syncwarp as nvcc emits it: BRA.DIV to a collective path for a diverged warp that
#: jumps back, placed after the kernel's EXIT
SYNCWARP = """
        .global         s
s:
.text.s:
	//## File "/x/b.cuh", line 3
        /*0000*/                   S2R R0, SR_TID.X ;
        /*0010*/                   BRA.DIV UR4, `(.L_x_9) ;
        /*0020*/                   WARPSYNC.ALL ;
.L_x_3:
	//## File "/x/b.cuh", line 4
        /*0030*/                   LDS R1, [R0] ;
        /*0040*/                   STG.E [R2.64], R1 ;
        /*0050*/                   EXIT ;
.L_x_9:
        /*0060*/                   WARPSYNC.COLLECTIVE R0, `(.L_x_3) ;
        /*0070*/                   BRA `(.L_x_3) ;
"""


def test_syncwarp_divergent_path_is_not_taken() -> None:
    """BRA.DIV falls through for a converged warp (it has both successors); the flow passes
    the code after it and leaves the diverged path alone."""
    f = sass.parse(SYNCWARP)["s"]
    first = f.blocks[0]
    assert len(first.succ) == 2, first.succ  # the target and the fall-through
    store = next(b.index for b in f.blocks if any(i.base == "STG" for i in b.instrs))
    res = flow.solve(f, [flow.Anchor("stg", {store: 4.0}, 4.0)])
    assert res.counts[store] == pytest.approx(1.0)
    diverged = next(b.index for b in f.blocks if any("COLLECTIVE" in i.opcode for i in b.instrs))
    assert res.counts[diverged] == pytest.approx(0.0, abs=1e-6)


INFLIGHT = """
        .global         m
m:
.text.m:
        /*0000*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0010*/                   LDG.E.128 R8, desc[UR4][R2.64+0x200] ;
        /*0020*/                   LDG.E R12, desc[UR4][R2.64+0x400] ;
        /*0030*/                   FADD R13, R9, R9 ;
        /*0040*/                   FADD R14, R12, R13 ;
        /*0050*/                   LDG.E.64 R16, desc[UR4][R2.64+0x600] ;
        /*0060*/                   STG.E [R2.64], R14 ;
        /*0070*/                   EXIT ;
"""


def test_bytes_in_flight() -> None:
    """Three loads issued back to back (16 + 16 + 4 bytes a lane) and a use of the second:
    the warp waits with all three in flight (36 * 32 bytes), and all three return in that
    round trip (the use of the third waits no more); the last load is never waited on
    (8 * 32 bytes, one more round trip at the end). The walk's average: (1152 + 256) / 2."""
    from perfmodel.inflight import inflight_bytes

    f = sass.parse(INFLIGHT)["m"]
    assert inflight_bytes(f, [1.0] * len(f.blocks)) == pytest.approx((1152 + 256) / 2)
    assert inflight_bytes(_kernel(), [0.0] * len(_kernel().blocks)) == 0.0


ASYNC_LOOP = """
        .global         a
a:
.text.a:
        /*0000*/                   LDG.E R4, desc[UR4][R2.64] ;
.L_x_0:
        /*0010*/                   LDGSTS.E.128 [R5], desc[UR4][R2.64] ;
        /*0020*/                   IADD3 R5, R5, 0x200, RZ ;
        /*0030*/                   ISETP.NE.AND P0, PT, R5, R6, PT ;
        /*0040*/               @P0 BRA `(.L_x_0) ;
        /*0050*/                   LDGDEPBAR ;
        /*0060*/                   DEPBAR.LE SB0, 0x0 ;
        /*0070*/                   STG.E [R2.64], R4 ;
        /*0080*/                   EXIT ;
"""


def test_bytes_in_flight_of_asynchronous_copies() -> None:
    """cp.async copies (LDGSTS, 16 bytes a lane) in a loop that turns 6 times before one
    wait (DEPBAR): all 6 and the plain load before them are in flight when the warp waits
    (6 * 512 + 128 bytes), one round trip; the plain load's use after it waits no more."""
    from perfmodel.inflight import inflight_bytes

    f = sass.parse(ASYNC_LOOP)["a"]
    assert [b.instrs[0].base for b in f.blocks][:3] == ["LDG", "LDGSTS", "LDGDEPBAR"]
    counts = [1.0, 6.0] + [1.0] * (len(f.blocks) - 2)
    assert inflight_bytes(f, counts) == pytest.approx(6 * 512 + 128)
    # the copy's accesses: a global load and a shared store, 16 bytes a lane each
    copy = f.blocks[1].instrs[0]
    assert copy.accesses == [("global", True, False, 16), ("shared", False, True, 16)]


def test_latency_term_is_littles_law() -> None:
    """dram bytes x latency / (bytes in flight per warp x resident warps on the busy SMs)."""
    from perfmodel.counts import Counts

    c = Counts(issued=1.0, inflight=512.0)
    k = predict.KernelCost("k", blocks=132 * 4, threads=256, registers=32, counts=c,
                           dram_bytes=1e9)
    p = predict.predict(k, H200)
    resident = 4 * 8 * 132  # 4 blocks of 8 warps on each of the 132 SMs
    assert p.terms["latency"] == pytest.approx(1e9 * H200.dram_latency_ns * 1e-3 / (512 * resident))
    # 2.2 MB in flight for a 1 us round trip moves 2.2 TB/s: slower than the 4.3 TB/s copy
    assert p.limiter == "latency" and p.terms["latency"] > 1.5 * p.terms["dram"]
    c.inflight = 0.0  # nothing loaded from global memory: no such term
    assert "latency" not in predict.predict(k, H200).terms


def test_occupancy_limits() -> None:
    assert occupancy(H200, 256, 64, 0) == 4  # 65536 / (64 * 256)
    assert occupancy(H200, 256, 32, 0) == 8  # 2048 threads
    assert occupancy(H200, 128, 32, 100 * 1024) == 2  # shared memory
    assert occupancy(H200, 256, 255, 0) == 1


def test_time_range_and_limiter() -> None:
    f = _kernel()
    c = count(f, flow.solve(f, [flow.Anchor("ldg", {1: 16.0}, 160.0)]).counts, {})
    k = predict.KernelCost("k", blocks=132 * 64, threads=256, registers=32, counts=c,
                           dram_bytes=1e9)
    p = predict.predict(k, H200)
    assert p.terms["dram"] == pytest.approx(1e9 / 4300e9 * 1e6)
    # one 16-byte load a lane in flight per warp (the loop's LDG.128 is used at once)
    assert c.inflight == pytest.approx(512.0)
    assert p.limiter == max(p.terms, key=p.terms.get)
    assert p.low_us == pytest.approx(p.terms[p.limiter] + 2.0) and p.low_us <= p.high_us
    c.inflight *= 8  # eight such loads in flight: DRAM's bandwidth is the limit again
    p = predict.predict(k, H200)
    assert p.limiter == "dram" and p.low_us == pytest.approx(1e9 / 4300e9 * 1e6 + 2.0)
    roof = predict.Roofline(1e9, 0.0)
    assert roof.time_us(H200, "float16") == pytest.approx(1e9 / 4300e9 * 1e6)


def test_baseline_check_flags_a_regression() -> None:
    rows = [{"suite": "paper", "case": "dw", "dtype": "float16", "layout": "nchw",
             "backend": "cuda", "direction": "fwd", "h200": {"low_us": 9.0, "high_us": 12.0}}]
    base = {report.key(rows[0]): {"low_us": 8.0, "high_us": 10.0}}
    bad, _ = report.check(rows, base)
    assert len(bad) == 1 and "+20%" in bad[0]
    rows[0]["h200"]["high_us"] = 10.5
    assert report.check(rows, base)[0] == []


# ---------------------------------------------------------------- the CUDA path, end to end

@pytest.fixture(scope="module")
def emu():
    from perfmodel.emulator import Emulator

    return Emulator()


def _known(emu, kind: str, n: int, stride: int, blocks: int, threads: int):
    from perfmodel.cuda_costs import launch_costs
    from perfmodel.emulator import known_call

    src, dst = torch.empty(max(n, 1)), torch.empty(max(n, blocks * threads))
    (k,) = launch_costs(emu, known_call(kind, src, dst, n, stride, blocks, threads), 132,
                        [8.0 * n])
    return k


@pytest.mark.parametrize("mode", ["dw", "dyn-dw", "attn-conn"])
def test_operands_are_finite_whatever_the_heap_held(mode: str) -> None:
    """The model's operands are finite even when the freed memory they reuse held NaN.

    Kernels branch on their data (the flipped strips on the filter's finiteness,
    conn_mma on each staged tile's), so uninitialised operands made the traced path (and
    the CI baseline check) depend on the heap's garbage.
    """
    from benchmarks.cases import SUITES
    from perfmodel.workload import operand

    case = next(c for suite in SUITES.values() for c in suite if c.mode == mode)
    for _ in range(3):  # the allocator hands back the block just freed
        poison = torch.full(case.weight_shape, float("nan"), dtype=torch.float16)
        del poison
        w = operand(case, "weight", "float16", "nchw", "cpu")
        assert w.shape == torch.Size(case.weight_shape)
        assert torch.isfinite(w).all(), f"{case.name}: weight operand not finite"
    assert torch.isfinite(operand(case, "image", "float16", "channels_last", "cpu")).all()

@needs_nvcc
def test_known_copy_kernel(emu) -> None:
    threads, blocks = 256, 132 * 8
    n = 8 * threads * blocks  # 8 grid-stride turns per thread
    k = _known(emu, "copy", n, threads * blocks, blocks, threads)
    c = k.counts
    assert k.name == "cuda Copy" and k.warps == blocks * 8
    assert c.memory["global_ld"] == pytest.approx(8.0) and c.memory["global_st"] == pytest.approx(8.0)
    assert c.widths["global_ld:4"] == pytest.approx(8.0)
    assert c.sectors == pytest.approx(8 * (4 + 4))  # 128-byte warp requests: 4 sectors each
    assert c.lines == pytest.approx(8 * (1 + 1))  # ... in one 128-byte line each
    assert c.mul_lanes == 0 and c.wavefronts == 0
    # nvcc unrolls the grid-stride loop: turns x accesses per turn = the 16 loads and stores
    assert c.hot is not None and c.hot.iterations * c.hot.global_ == pytest.approx(16, rel=0.1)
    # each store waits for its load: one 4-byte load a lane in flight per round trip, and
    # 64 warps an SM keep too few bytes in flight for DRAM's bandwidth (Little's law)
    assert c.inflight == pytest.approx(128.0)
    p = predict.predict(k, H200)
    assert p.limiter == "latency" and p.terms["latency"] > p.terms["dram"]


@needs_nvcc
def test_known_fma_chain(emu) -> None:
    k = _known(emu, "fma_chain", 1 << 16, 0, (1 << 16) // 256, 256)
    c = k.counts
    assert c.mul_lanes == pytest.approx(64.0)
    assert c.by_class["fp32"] == pytest.approx(64.0)
    assert c.memory["global_ld"] == pytest.approx(2.0) and c.memory["global_st"] == pytest.approx(1.0)


@needs_nvcc
@pytest.mark.parametrize("stride, store_wavefronts, load_wavefronts",
                         [(1, 1, 1), (2, 2, 2), (3, 3, 1), (32, 32, 32)])
def test_known_bank_conflicts(emu, stride: int, store_wavefronts: int,
                              load_wavefronts: int) -> None:
    # 32 * stride floats written 32 at a time (conflict-free), then lane l reads word
    # l * stride: bank (l * stride) % 32, conflicts = 32 / (32 / gcd(stride, 32))
    k = _known(emu, "shared_stride", 0, stride, 64, 32)
    c = k.counts
    assert c.memory["shared_st"] == pytest.approx(stride)
    assert c.memory["shared_ld"] == pytest.approx(1.0)
    assert c.wavefronts == pytest.approx(store_wavefronts + load_wavefronts)


@needs_nvcc
@pytest.mark.parametrize("stride, lines, sectors", [(1, 1, 4), (2, 2, 8), (8, 8, 32),
                                                    (32, 32, 32), (33, 32, 32)])
def test_known_global_lines_and_sectors(emu, stride: int, lines: int, sectors: int) -> None:
    # lane l loads the float at l * stride (then a coalesced 4-byte store: 1 line, 4 sectors)
    k = _known(emu, "global_stride", 32 * stride, stride, 16, 32)
    c = k.counts
    assert c.memory["global_ld"] == pytest.approx(1.0)
    assert c.lines == pytest.approx(lines + 1) and c.sectors == pytest.approx(sectors + 4)
    p = predict.predict(k, H200)
    assert p.terms["l1"] == pytest.approx(p.terms["l2"] * (lines + 1) / (sectors + 4))


@needs_nvcc
def test_known_async_copies(emu) -> None:
    # cp.async (LDGSTS): each copy is a global load and a shared store at one source line,
    # and the 8 copies a lane issues stay in flight together until the wait (DEPBAR)
    threads, blocks = 256, 132
    k = _known(emu, "async_copy", 8 * threads * blocks, 0, blocks, threads)
    c = k.counts
    assert c.widths["global_ld:4"] == pytest.approx(8.0) and c.widths["shared_st:4"] == pytest.approx(8.0)
    assert c.memory["shared_ld"] == pytest.approx(8.0) and c.memory["global_st"] == pytest.approx(1.0)
    assert c.wavefronts == pytest.approx(8 + 8)  # conflict-free stores and loads
    assert c.lines == pytest.approx(8 + 1) and c.sectors == pytest.approx(8 * 4 + 4)
    assert c.inflight == pytest.approx(8 * 128.0)  # one round trip for all eight


@needs_nvcc
def test_known_predicated_copies(emu) -> None:
    # AsyncCopy's 8 unrolled copies and reads, of which 3 run on every lane (lane % 8 +
    # 8 k < 24): the 8 are issued (LDGSTS predicated off on every lane for k >= 3), only
    # the 3 make requests and stay in flight
    threads, blocks = 256, 132
    k = _known(emu, "predicated_copy", 8 * threads * blocks, 24, blocks, threads)
    c = k.counts
    assert c.widths["global_ld:4"] == pytest.approx(8.0)  # issued
    assert c.lines == pytest.approx(3 + 1) and c.sectors == pytest.approx(3 * 4 + 4)
    assert c.wavefronts == pytest.approx(3 + 3)
    assert c.inflight == pytest.approx(3 * 128.0)


@needs_nvcc
def test_trace_pairs_lanes_within_a_barrier_interval(emu) -> None:
    # 4 tiles of two conflict-free stores, lanes 24..31 out of the second, a sync_warp
    # after each: 8 stores of one wavefront, then one conflict-free load. Paired over
    # the whole kernel, lanes 24..31's next tile's stores would meet lanes 0..7's banks.
    k = _known(emu, "partial_units", 2, 4, 16, 32)
    c = k.counts
    assert c.memory["shared_st"] == pytest.approx(8.0)
    assert c.wavefronts == pytest.approx(8.0 + 1.0)


# ---------------------------------------------------------------- Triton

# In its own process: this test session defines localconn's Triton kernels for the
# CPU interpreter (conftest.py), which leaves Triton unable to compile for a GPU.
TRITON_CHECK = r"""
import json, sys
import torch, triton, triton.language as tl
try:
    from triton.backends.nvidia.compiler import get_ptxas  # noqa: F401
except Exception as e:
    print("SKIP", e); sys.exit(0)
from perfmodel import cubin
from perfmodel.triton_jit import _spec, compile_jit

@triton.jit
def copy(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst + offs, tl.load(src + offs, mask=offs < n), mask=offs < n)

out = {}
for n in (1 << 20, (1 << 20) + 3):
    args = {"src": torch.empty(n, device="meta"), "dst": torch.empty(n, device="meta"), "n": n}
    tile = {"BLOCK": 1024, "num_warps": 4}
    attrs = _spec(copy, args, tile)["compile"]["configs"][0]
    k = next(iter(cubin.kernels(compile_jit(copy, args, tile, "test_copy").cubin).values()))
    out[n] = {"divisible": ["tt.divisibility", 16] in attrs.get((2,), []),
              "loads": [i.memory[3] for i in k.code.instrs if i.base == "LDG"],
              "stack": k.resources.stack}
print(json.dumps(out))
"""


def test_triton_specialisation_and_sass(tmp_path) -> None:
    """The JIT's own specialisation (n % 16) reaches the compiled SASS: 16-byte loads only
    when n is known divisible by 16, 8 floats per thread either way."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "triton_check.py"  # @triton.jit needs its source in a file
    script.write_text(TRITON_CHECK)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, str(script)], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    if r.returncode == 0 and r.stdout.startswith("SKIP"):
        pytest.skip(f"no sm_90 toolchain in this Triton: {r.stdout.strip()}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    aligned, ragged = res[str(1 << 20)], res[str((1 << 20) + 3)]
    assert aligned["divisible"] and not ragged["divisible"]
    assert aligned["loads"] == [16, 16]  # 1024 floats / 128 threads = 8 per thread
    assert sum(ragged["loads"]) == 32 and set(ragged["loads"]) == {4}
    assert aligned["stack"] == 0


def test_calibration_joins_measured_and_predicted() -> None:
    from perfmodel.calibrate import join, table

    row = {"suite": "paper", "case": "dw 64x96x56x56 k7", "dtype": "float16", "layout": "nchw",
           "backend": "cuda", "direction": "fwd"}
    model = [dict(row, kernels=[{"name": "cuda ConnTile"}],
                  h200={"low_us": 10.0, "high_us": 20.0, "limiter": "int"})]
    measured = [dict(row, ms=0.03, status="ok", kernel="conn_tile_fixed"),
                dict(row, backend="torch", ms=0.01, status="ok"),
                dict(row, direction="input-grad", ms=0.01, status="ok")]  # not predicted
    (r,) = join(measured, model, "h200")  # no torch row in the model: PyTorch's not joined
    assert r["measured_us"] == pytest.approx(30.0) and not r["inside"]
    assert r["vs_high"] == pytest.approx(1.5)
    assert "| cuda | int | 1 | 1.50 | 0/1 |" in table([r])
    # the peer row: PyTorch's measured kernel against its predicted one
    model.append(dict(row, backend="torch", kernels=[{"name": "torch conv_depthwise2d"}],
                      h200={"low_us": 8.0, "high_us": 12.0, "limiter": "int"}))
    ours, peer = join(measured, model, "h200")
    assert peer["backend"] == "torch" and peer["inside"]
    assert peer["measured_us"] == pytest.approx(10.0)
