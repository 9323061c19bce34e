"""The ceilings of the GPUs the model predicts for (H100 SXM, H200), each with its source.

Per-SM rates are per clock; device rates multiply by the SMs and the clock.

* SMs, clocks, register file, shared memory, occupancy limits: NVIDIA's
  H100 whitepaper / CUDA C++ Programming Guide (compute capability 9.0).
* Instruction rates per SM per clock: the Programming Guide's throughput
  table for cc 9.0 (fp32 add/mul/fma 128 lanes, half2 128 lanes = 256
  results, fp64 64, 32-bit integer add/mad/compare/logic/shift 64,
  conversions 16, special functions 16); the four warp schedulers each
  issue one warp-instruction per clock.
* Shared memory: 32 banks x 4 bytes, one wavefront per clock per SM.
* L1: one 128-byte line of a request per clock per SM (a warp's access touching 32
  lines takes 32 clocks however few bytes it uses).
* L2 to the SMs: one 32-byte sector per clock per SM (about 8.4 TB/s on 132 SMs at
  1.98 GHz), a lead: third-party microbenchmarks put an H100 PCIe's L2 at roughly
  5.5 TB/s on 114 SMs at 1.755 GHz (about 27 bytes a clock an SM).
* DRAM round trip (Little's law's latency, :mod:`perfmodel.inflight`): 1000 ns, a
  loaded round trip, chosen against the 2026-12-04 H200 measurements: with the bytes
  in flight that module estimates, the 248 CUDA rows measured are predicted with a mean
  |log(measured / predicted)| of 0.38 (0.47 at 600 ns, 0.35 at 1400-1600 ns, 0.54
  without the term; benchmarks/results/model/NOTES.md, 2026-12-05 (2)). Longer values
  fit our rows a little better but would make a plain copy with 16 bytes a lane in
  flight at full occupancy miss the measured copy bandwidth, so they would stand for
  what the static estimate misses, not for the memory system.

All of these are leads until the GPU check measures them (``make gpu-check``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One GPU's ceilings."""

    name: str
    sms: int
    clock_ghz: float  # boost clock the rates assume
    dram_gbps: float  # measured copy bandwidth (read + write bytes per second / 1e9)
    tensor_tflops: float  # dense fp16/bf16 multiply-add, 2 flops each
    l2_bytes: int
    issue_per_sm: float = 4.0  # warp-instructions per clock (4 schedulers)
    # warp-instructions per clock per SM by execution class (lanes / 32)
    fp32_per_sm: float = 4.0
    fp16x2_per_sm: float = 4.0
    fp64_per_sm: float = 2.0
    int_per_sm: float = 2.0
    conv_per_sm: float = 0.5
    mufu_per_sm: float = 0.5
    mma_per_sm: float = 0.5  # HMMA.16816 (m16n8k16, float32 sums) warp-instructions
    wavefronts_per_sm: float = 1.0  # shared memory
    lines_per_sm: float = 1.0  # L1: a request's 128-byte lines, one a clock
    l2_sectors_per_sm: float = 1.0  # L2 <-> SM: 32-byte sectors
    # occupancy limits (cc 9.0)
    max_threads_per_sm: int = 2048
    max_blocks_per_sm: int = 32
    registers_per_sm: int = 65536
    smem_per_sm: int = 228 * 1024
    smem_per_block_reserved: int = 1024  # the runtime's reservation per block
    smem_per_block_optin: int = 227 * 1024  # a block's shared memory at most, by opt-in
    dram_latency_ns: float = 1000.0  # a loaded DRAM round trip (chosen against measurements)
    launch_overhead_us: float = 2.0  # kernel-to-kernel gap on a stream (graph replay ~1-2 us)

    def per_clock(self, per_sm: float) -> float:
        """A per-SM-per-clock rate as a device rate per second."""
        return per_sm * self.sms * self.clock_ghz * 1e9

    def fma_tflops(self, dtype: str) -> float:
        """Peak multiply-add rate without tensor cores (TFLOP/s, 2 flops per FMA)."""
        lanes = {"float64": self.fp64_per_sm * 32, "float32": self.fp32_per_sm * 32}.get(
            dtype, self.fp16x2_per_sm * 64)
        return 2 * self.per_clock(lanes) / 1e12

    def best_tflops(self, dtype: str) -> float:
        """The fastest unit for ``dtype`` that keeps its accuracy: tensor cores for 16-bit types
        (float32 accumulation), FFMA for float32 (TF32 would lose float32 accuracy), DFMA for
        float64."""
        if dtype in ("float16", "bfloat16"):
            return self.tensor_tflops
        return self.fma_tflops(dtype)


H100 = Gpu("H100 SXM", sms=132, clock_ghz=1.98, dram_gbps=3000.0, tensor_tflops=790.0,
           l2_bytes=50 * 2**20)
H200 = Gpu("H200", sms=132, clock_ghz=1.98, dram_gbps=4300.0, tensor_tflops=790.0,
           l2_bytes=60 * 2**20)
GPUS = {"h100": H100, "h200": H200}


def occupancy(gpu: Gpu, threads: int, registers: int, smem: int) -> int:
    """Blocks of ``threads`` threads that fit on one SM (registers allocated per warp in
    units of 256, i.e. 8 per thread; shared memory plus the per-block reservation)."""
    warps = -(-threads // 32)
    regs_per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_regs = gpu.registers_per_sm // max(regs_per_warp * warps, 1)
    by_threads = gpu.max_threads_per_sm // max(warps * 32, 1)
    by_smem = gpu.smem_per_sm // max(smem + gpu.smem_per_block_reserved, 1) if smem else \
        gpu.max_blocks_per_sm
    return max(0, min(by_regs, by_threads, by_smem, gpu.max_blocks_per_sm))
