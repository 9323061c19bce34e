// The depth-wise weight gradient (corr2d, one filter the samples share) on tensor cores
// for small planes, the batch as the GEMM's K: half and bfloat16, planes of at most 8 x 8,
// a KF x KF kernel (3, 5, 7) with padding KF / 2, stride 1, dilation 1, any layout.
//
// With conn_batch.cuh's staging (batch_stage.cuh: a sample's plane as a row of 64 values,
// k = 8 qy + qx, zeros past the edges), the products of every output position p and
// input position q summed over the samples are one GEMM per channel,
//   P[p][q] = sum_n G[n][p] X[n][q]       (64 x 64, K = 16 samples a step),
// and the filter's gradient is its diagonals: w'(i, j) = sum_p P[p][p + (i, j) - KF/2]
// (positions on the 8 x 8 grid; a tap reaching past the plane meets staged zeros or no
// grid position, the reference's zero padding). mma.sync m16n8k16: A = G^T (16 positions,
// two output rows, by 16 samples) and B = X (16 samples by one input row of 8) both by
// ldmatrix.trans from the staged rows. Lane (g, q)'s sum e of tile (m, n) is
// P[16m + g + 8 (e / 2)][8n + 2q + e % 2]: tap row i = n - 2m - e / 2 + KF/2 (compile time),
// tap column 2q + e % 2 - g + KF/2 (the lane's): each lane adds its sums into KF x 2
// registers once, after the batch, and a block pass adds the lanes of each tap.
//
// A block owns kBatchCorrChannels = 4 channels, two warps each (output rows 0..3 and
// 4..7: eight of its 16 tiles hold some tap), and walks the samples 16 at a time (the
// sample groups of its split: ReduceSplits adds the splits' partials when there are
// several); P stays in registers for the whole batch.
//
// Exactness: the products are exact in float32 and every tile's sums are probed once at
// the end: any non-finite value of G or X meets a staged value in some tile (0 * Inf is
// NaN), so finite sums mean every product the reference makes is finite and every extra
// one (staged zeros, positions past the plane) is exactly 0. A channel with a non-finite
// sum is summed again tap by tap from global memory (float32, the reference's masking).
#pragma once

#include "batch_stage.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF>
struct CorrBatch {
  static constexpr int S = kBatchSamples, CH = kBatchCorrChannels;
  static constexpr int AS = kBatchStride, CS = kBatchChannelStride;
  static constexpr int PD = KF / 2, TAPS = KF * KF;
  static constexpr int MT = 2, NT = 8;  // a warp's M tiles (2 output rows each), N tiles
  static_assert(CH * 64 == kThreads && 2 * CH == kThreads / 32, "a block's threads and warps");
  using Grid = BatchGrid<CH, 8, 8, 0, AS, CS>;  // batch_stage.cuh
  static_assert(CH * TAPS <= kThreads, "a thread per tap in the block pass");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int64_t c0 = block_index() % t.groups * CH, split = block_index() / t.groups;
    const int half = warp & 1;  // output rows 4 half .. 4 half + 3
    uint32_t* flags = reinterpret_cast<uint32_t*>(smem);  // a channel's sums not finite
    T* gs = reinterpret_cast<T*>(smem + 16);              // CH channels x S rows of AS
    T* xs = gs + CH * CS;
    F* red = reinterpret_cast<F*>(xs + CH * CS);          // [warp][i][e][lane]
    if (tid < CH) flags[tid] = 0;
    const BatchPos pg = batch_pos<Grid>(tid, t.cl_a, int32_t(p.h.out), int32_t(p.w.out), c0, p.C);
    const BatchPos px = batch_pos<Grid>(tid, t.cl_b, int32_t(p.h.in), int32_t(p.w.in), c0, p.C);

    // ldmatrix rows: A (G^T) matrix m: samples r + 8 (m / 2), positions 8 (m % 2) of the
    // M tile; B (X) matrix m: samples r + 8 (m % 2), input row 2u + m / 2
    const int r = lane & 7, m = lane >> 3;
    const SmemAddr arow = smem_addr(gs + (warp >> 1) * CS + (r + 8 * (m >> 1)) * AS +
                                    16 * MT * half + 8 * (m & 1));
    const SmemAddr brow = smem_addr(xs + (warp >> 1) * CS + (r + 8 * (m & 1)) * AS + 8 * (m >> 1));
    F acc[MT][NT][4];
LC_UNROLL
    for (int mt = 0; mt < MT; ++mt)
LC_UNROLL
      for (int nt = 0; nt < NT; ++nt)
LC_UNROLL
        for (int e = 0; e < 4; ++e) acc[mt][nt][e] = F(0);
    const int64_t groups = ceil_div(p.N, int64_t(S));
    for (int64_t grp = split; grp < groups; grp += t.splits) {
      const int64_t n0 = grp * S;
      const int ns = int(min_of(int64_t(S), p.N - n0));
      sync_threads();  // the previous group's reads of the staged rows are done
      batch_load<Grid>(gs, static_cast<const T*>(a.a) + (n0 * a.a_s.n + c0 * a.a_s.c), a.a_s, pg, ns);
      batch_load<Grid>(xs, static_cast<const T*>(a.b) + (n0 * a.b_s.n + c0 * a.b_s.c), a.b_s, px, ns);
      sync_threads();
      if (kHaveMma) products(acc, arow, brow);
    }
    // the lane's sums by tap row i and column parity e, the probe of every sum
    F tsum[KF][2], probe = F(0);
LC_UNROLL
    for (int i = 0; i < KF; ++i) tsum[i][0] = tsum[i][1] = F(0);
    if (half == 0)
      diagonals<0>(acc, tsum, probe);
    else
      diagonals<1>(acc, tsum, probe);
    if (!kHaveMma || !(probe == F(0))) flags[warp >> 1] = 1;
LC_UNROLL
    for (int i = 0; i < KF; ++i)
LC_UNROLL
      for (int e = 0; e < 2; ++e) red[((warp * KF + i) * 2 + e) * 32 + lane] = tsum[i][e];
    sync_threads();
    // a thread per (channel, tap): the lanes (g, q, e) with 2q + e - g = j - KF/2
    if (tid >= CH * TAPS) return;
    const int ch = tid / TAPS, tap = tid % TAPS, i = tap / KF, j = tap % KF;
    const int64_t c = c0 + ch;
    if (c >= p.C) return;
    F s = F(0);
    if (flags[ch] == 0) {
LC_UNROLL
      for (int w = 0; w < 2; ++w)
LC_UNROLL
        for (int g = 0; g < 8; ++g) {
          const int v = j - PD + g;  // 2q + e
          if (v >= 0 && v < 8)
            s += red[(((2 * ch + w) * KF + i) * 2 + (v & 1)) * 32 + 4 * g + (v >> 1)];
        }
    } else {
      s = direct(a, t, c, split, i, j);
    }
    const int64_t numel = p.C * TAPS, idx = c * TAPS + tap;
    if (t.splits == 1)
      store_acc(static_cast<T*>(a.out) + idx, s);
    else
      static_cast<F*>(a.workspace)[split * numel + idx] = s;
  }

  // acc += the products of the staged group: every M and N tile (the empty ones cost
  // mma only; skipping them needs the M tiles at compile time)
  static LC_DEVICE void products(F (&acc)[MT][NT][4], SmemAddr arow, SmemAddr brow) {
    uint32_t b[NT][2];
LC_UNROLL
    for (int u = 0; u < NT / 2; ++u) {
      uint32_t r4[4];
      LC_LOAD_T4(r4, brow + 2 * 16 * u);  // input rows 2u, 2u + 1
      b[2 * u][0] = r4[0], b[2 * u][1] = r4[1], b[2 * u + 1][0] = r4[2], b[2 * u + 1][1] = r4[3];
    }
LC_UNROLL
    for (int mt = 0; mt < MT; ++mt) {
      uint32_t af[4];
      LC_LOAD_T4(af, arow + 2 * 16 * mt);
LC_UNROLL
      for (int nt = 0; nt < NT; ++nt) mma_16816<T>(acc[mt][nt], af, b[nt]);
    }
  }

  // tsum[i][e % 2] += the sums of tap row i (M tiles of output rows 4H..4H + 3); probe +=
  // every sum times 0 (NaN if one is not finite)
  template <int H>
  static LC_DEVICE void diagonals(const F (&acc)[MT][NT][4], F (&tsum)[KF][2], F& probe) {
LC_UNROLL
    for (int mt = 0; mt < MT; ++mt)
LC_UNROLL
      for (int nt = 0; nt < NT; ++nt)
LC_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int i = nt - 2 * (MT * H + mt) - e / 2 + PD;
          if (i >= 0 && i < KF) tsum[i >= 0 && i < KF ? i : 0][e & 1] += acc[mt][nt][e];
          probe += acc[mt][nt][e] * F(0);
        }
  }

  // Tap (i, j) of channel c over the split's samples from global memory: G's positions
  // inside its plane, X's zeros outside the image, float32.
  static LC_DEVICE F direct(const CorrArgs& a, const CorrBatchPlan& t, int64_t c, int64_t split,
                            int i, int j) {
    const Problem& p = a.p;
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int64_t groups = ceil_div(p.N, int64_t(S));
    F s = F(0);
    for (int64_t grp = split; grp < groups; grp += t.splits)
      for (int64_t n = grp * S; n < min_of(grp * S + S, p.N); ++n) {
        const T* g = static_cast<const T*>(a.a) + n * a.a_s.n + c * a.a_s.c;
        const T* x = static_cast<const T*>(a.b) + n * a.b_s.n + c * a.b_s.c;
        for (int32_t y = 0; y < H; ++y)
          for (int32_t o = 0; o < W; ++o) {
            const int32_t iy = y + i - PD, ix = o + j - PD;
            const bool in = iy >= 0 && iy < H && ix >= 0 && ix < W;
            const F xv = in ? to_float(x[iy * a.b_s.h + ix * a.b_s.w]) : F(0);
            s += to_float(g[y * a.a_s.h + o * a.a_s.w]) * xv;
          }
      }
    return s;
  }
};

}  // namespace lc
