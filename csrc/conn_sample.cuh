// conn2d (and the flipped conn2d_transpose) on tensor cores for small planes with a filter
// of each sample's own (dynamic depth-wise, Nw = N): half and bfloat16, planes of at most
// 16 x 16, a KF x KF kernel (3, 5, 7) with padding KF / 2, stride 1, dilation 1, any
// layout. DWNet-T's 14 x 14 and 7 x 7 stages with dynamic filters are this case: the batch
// cannot be the GEMM's M (conn_batch.cuh) when every sample has its own filter, and a
// plane this small leaves conn_mma.cuh's 16 x 32 warp tile mostly idle.
//
// A sample's plane is staged as a grid GW values wide (16; 8 for planes of at most 8 x 8),
// its row qy at grid row qy + KF/2 (KF/2 zero rows above, zeros below and past its
// columns; batch_stage.cuh). The GEMM's M is the plane's output rows: for a kernel row i,
//   Y[py][px] += sum_qx X[py + i][qx] T_i[qx][px],  T_i[qx][px] = w(i, qx - px + KF/2)
// (grid row py + i; 0 outside the filter), mma.sync m16n8k16 (mma.cuh) with A = 16
// output rows x 16 grid values (ldmatrix.x4 on the grid; 16-wide rows 24 values apart,
// so that its eight rows meet distinct banks) and B = a 16 x 8
// Toeplitz block. GW = 16: K tile i is grid row py + i, two N tiles of 8 columns, 2 KF
// mma a plane. GW = 8: K tile kt is the two grid rows py + 2 kt, py + 2 kt + 1 (adjacent
// in the grid: 16 values), so its B stacks T_2kt over T_2kt+1 (zero past the filter),
// one N tile, (KF + 1) / 2 mma; only output rows 0..7 exist, so A's rows 8..15 are
// copies of rows 0..7 (the x4 load's second and fourth registers are dropped: the rows
// it reads there lie inside the sample's grid, whose stride leaves room for them). A lane (g, q)
// holds B rows 2q, 2q + 1 (register 0) and 2q + 8, 2q + 9 (register 1) of column g:
// the filter pairs (w(i, u - 1), w(i, u)), u = 2q + 8 (r - h) - g + KF/2 + 1 for GW = 16,
// u = 2q - g + KF/2 + 1 of kernel row 2 kt + r for GW = 8 (mma.cuh filter_pairs).
//
// A block owns CW channels (2; 4 for GW = 8) x kBatchSamples samples; inputs and outputs
// move value by value through shared memory (batch_stage.cuh, coalesced in either
// layout), and each warp takes CW * 16 / 8 of the block's planes one after another: the
// plane's filter pairs (from global memory), its B registers, the KT mma steps, the
// outputs into the output grid. Two block barriers.
//
// Exactness: as conn_batch.cuh. The sums are float32 of exact products; the Toeplitz
// zeros multiply staged values of the plane's grid (zeros or finite inputs), so while the
// plane, its filter and the bias are finite the sums are exact, and otherwise some sum of
// the plane is not finite: the warp then computes that plane's outputs on the direct path
// (tap by tap from the staged grid, with the reference's masking). Below sm_80 the direct
// path always.
#pragma once

#include "batch_stage.cuh"
#include "conn_batch.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

template <class T, int KF, bool FLIP, int GW>
struct ConnSample {
  static constexpr int S = kBatchSamples, CW = sample_channels(GW);
  static constexpr bool kWide = GW == 16;
  static constexpr int PD = KF / 2, GR = sample_grid_rows(KF, GW);
  static constexpr int KT = kWide ? KF : (KF + 1) / 2;  // K tiles
  static constexpr int NT = kWide ? 2 : 1;              // N tiles (8 output columns each)
  static constexpr int RS = sample_row_stride(GW);  // input grid rows
  // a channel's grids batch_channel_pad past the samples' (a channels_last pixel's
  // channels, staged by neighbouring lanes, meet distinct banks)
  static constexpr int AS = sample_stride(KF, GW), CS = S * AS + batch_channel_pad(CW);  // input
  static constexpr int OAS = sample_out_stride(GW), OCS = S * OAS + batch_channel_pad(CW);  // output
  static constexpr int NP = KF * (KF + 2);              // a plane's filter pairs
  static constexpr int PPW = CW * S / (kThreads / 32);  // planes a warp
  using In = BatchGrid<CW, GW, GR, PD, AS, CS, RS>;
  using Out = BatchGrid<CW, GW, GW, 0, OAS, OCS>;
  static constexpr int kInRounds = (In::kPositions + kThreads - 1) / kThreads;
  static constexpr int kOutRounds = (Out::kPositions + kThreads - 1) / kThreads;
  static_assert(S % PPW == 0, "a warp's planes are of one channel");
  static_assert(GW == 8 || GW == 16, "grids 8 or 16 values wide");
  static_assert(CW * NP <= kThreads, "a block's pairs in one round of positions");
  static_assert(conn_sample_bytes(KF, GW) ==
                    16 * (kThreads / 32) + 4 * CW * S * NP + 2 * CW * (CS + OCS),
                "plan.h's shared memory");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int64_t n0 = block_index() / t.groups * S, c0 = block_index() % t.groups * CW;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(smem + 16 * warp);
    uint32_t* table = reinterpret_cast<uint32_t*>(smem + 16 * (kThreads / 32));  // CW x S planes
    T* xs = reinterpret_cast<T*>(table + CW * S * NP);  // CW x In grids
    T* ys = xs + CW * CS;                               // CW x Out grids
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int ns = int(min_of(int64_t(S), p.N - n0));
    if (lane == 0) flag[0] = 0;  // (the block barrier publishes it)

    stage_pairs(a, n0, c0, ns, table, tid);
    const T* x = static_cast<const T*>(a.src) + (n0 * a.src_s.n + c0 * a.src_s.c);
LC_UNROLL
    for (int k = 0; k < kInRounds; ++k) {
      const int f = tid + kThreads * k;
      const BatchPos b = batch_pos<In>(f, t.channels_last, H, W, c0, p.C);
      if (f < In::kPositions) batch_load<In>(xs, x, a.src_s, b, ns);
    }
    sync_threads();
    const int j = warp * PPW / S;  // the warp's channel in the block
    if (c0 + j < p.C) {  // (warp-uniform)
      const int64_t c = c0 + j;
      const F b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : F(0);
      const int g = lane >> 2, q = lane & 3;
      // this lane's pairs of B register r of N tile h (GW = 16: by r - h + 1; GW = 8: [0])
      int at[3];
LC_UNROLL
      for (int d = 0; d < 3; ++d)
        at[d] = pair_slot<KF>(2 * q + (kWide ? 8 * (d - 1) : 0) - g + PD + 1);
      for (int k = 0; k < PPW; ++k) {
        const int s = warp * PPW % S + k;
        if (s >= ns) break;
        plane(table + (j * S + s) * NP, xs + j * CS + s * AS, ys + j * OCS + s * OAS, b0, at,
              flag, H, W, g, q);
      }
    }
    sync_threads();
    T* y = static_cast<T*>(a.dst) + (n0 * a.dst_s.n + c0 * a.dst_s.c);
LC_UNROLL
    for (int k = 0; k < kOutRounds; ++k)
      batch_store<Out>(y, a.dst_s, ys,
                       batch_pos<Out>(tid + kThreads * k, t.channels_last, H, W, c0, p.C), ns);
  }

  // The block's filters as filter_pairs' tables, a plane's NP words (CW x S planes, the
  // channel's samples together): pair (i, u) of channel j is one thread's, which walks the
  // block's samples (the filter flipped for FLIP; zeros outside it).
  static LC_DEVICE void stage_pairs(const ConnArgs& a, int64_t n0, int64_t c0, int ns,
                                    uint32_t* table, int tid) {
    if (tid >= CW * NP) return;
    const int j = tid / NP, e = tid % NP, i = e / (KF + 2), u = e % (KF + 2);
    if (c0 + j >= a.p.C) return;
    const int fi = FLIP ? KF - 1 - i : i;
    const bool lo_in = u >= 1 && u <= KF, hi_in = u < KF;
    const int64_t row = fi * a.w_s.kh;
    const int64_t lo_at = row + (FLIP ? KF - u : u - 1) * a.w_s.kw;
    const int64_t hi_at = row + (FLIP ? KF - 1 - u : u) * a.w_s.kw;
    const T* wp = static_cast<const T*>(a.weight) + n0 * a.w_s.n + ((c0 + j) / a.p.cpg) * a.w_s.g;
    uint32_t* to = table + j * S * NP + e;
    for (int r = 0; r < ns; ++r, wp += a.w_s.n, to += NP) {
      const T lo = lo_in ? wp[lo_in ? lo_at : 0] : from_float<T>(0.0f);
      const T hi = hi_in ? wp[hi_in ? hi_at : 0] : from_float<T>(0.0f);
      *to = pack2(lo, hi);
    }
  }

  // One plane: its filter pairs, its staged grid x, its output grid y (rows GW values apart).
  static LC_DEVICE void plane(const uint32_t* pairs, const T* x, T* y, F b0, const int (&at)[3],
                              volatile uint32_t* flag, int32_t H, int32_t W, int g, int q) {
    F acc[NT][4];
    if (sums(x, pairs, b0, at, flag, acc)) {
      // word (output row g + 8 e, columns 8 h + 2q, + 1); GW = 8: rows 0..7 only
LC_UNROLL
      for (int h = 0; h < NT; ++h)
LC_UNROLL
        for (int e = 0; e < (kWide ? 2 : 1); ++e)
          *reinterpret_cast<uint32_t*>(y + (g + 8 * e) * GW + 8 * h + 2 * q) =
              pack_floats<T>(acc[h][2 * e] + b0, acc[h][2 * e + 1] + b0);
    } else {
      for (int e = 0; e < 4 * NT; ++e) {  // (N tile, row half, column parity)
        const int py = g + 8 * ((e >> 1) & 1), px = 8 * (e >> 2) + 2 * q + (e & 1);
        if (py >= H || px >= W) continue;
        // (the pairs are the effective filter: flipped already)
        y[py * GW + px] = from_float<T>(batch_direct<T, KF, FLIP, RS, PD>(x, pairs, b0, py, px, H, W));
      }
    }
  }

  // The plane's sums (acc[h]: N tile h; b0 is added when they are stored); false on every
  // lane if any is not finite (or without mma.sync).
  static LC_DEVICE bool sums(const T* x, const uint32_t* pairs, F b0, const int (&at)[3],
                             volatile uint32_t* flag, F (&acc)[NT][4]) {
    if (!kHaveMma) return false;
LC_UNROLL
    for (int h = 0; h < NT; ++h)
LC_UNROLL
      for (int e = 0; e < 4; ++e) acc[h][e] = F(0);
    if constexpr (kWide) {
LC_UNROLL
      for (int i = 0; i < KF; ++i) {
        uint32_t afr[4], w3[3];
        load_a(x + RS * i, RS, afr);
LC_UNROLL
        for (int d = 0; d < 3; ++d) w3[d] = pairs[i * (KF + 2) + at[d]];
LC_UNROLL
        for (int h = 0; h < 2; ++h) {
          const uint32_t b[2] = {w3[1 - h], w3[2 - h]};
          mma_16816<T>(acc[h], afr, b);
        }
      }
    } else {
LC_UNROLL
      for (int kt = 0; kt < KT; ++kt) {
        uint32_t afr[4];
        load_a(x + RS * 2 * kt, RS, afr);  // (rows 8..15: read, not used)
        afr[1] = afr[0];
        afr[3] = afr[2];
        const uint32_t b[2] = {pairs[2 * kt * (KF + 2) + at[0]],
                               2 * kt + 1 < KF ? pairs[(2 * kt + 1) * (KF + 2) + at[0]] : 0u};
        mma_16816<T>(acc[0], afr, b);
      }
    }
    F probe = b0 * F(0);  // (the bias joins the sums in the epilogue)
LC_UNROLL
    for (int h = 0; h < NT; ++h)
LC_UNROLL
      for (int e = 0; e < 4; ++e) probe += acc[h][e] * F(0);  // NaN if one is not finite
    return warp_all(probe == F(0), flag);
  }
};

}  // namespace lc
