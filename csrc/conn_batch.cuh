// conn2d (and the flipped conn2d_transpose) on tensor cores for small planes, the batch
// as the GEMM's M: half and bfloat16, planes of at most 8 x 8, a KF x KF kernel (3, 5, 7)
// with padding KF / 2, stride 1, dilation 1, a weight shared by the samples and the
// positions (static depth-wise), any layout (NCHW, channels_last, strided views).
//
// A sample's plane is staged as one row of 64 values, k = 8 qy + qx (zeros past the
// plane's edges), and output row py of 8 columns is one N tile: for 16 samples s of
// channel c,
//   Y[s][8 py + px] = b + sum_k X[s][k] T[k][8 py + px],
//   T[8 qy + qx][8 py + px] = w(qy - py + KF/2, qx - px + KF/2)  (0 outside the filter),
// a GEMM of 16 x 64 by 64 x 64 in mma.sync m16n8k16 (mma.cuh): A = 16 samples x input
// rows 2 kt, 2 kt + 1 (ldmatrix.x4), B = T's block of K tile kt and N tile py. A lane
// (g, q) holds B rows qx = 2q, 2q + 1 of column px = g, so its register h of that block
// is the filter pair (w(i, u - 1), w(i, u)) with i = 2 kt + h - py + KF/2 and
// u = 2q - g + KF/2 + 1 (mma.cuh filter_pairs): every B fragment of the plane is one of
// KF registers per lane, built once per channel. Blocks whose rows i miss the filter
// are skipped at compile time: 7x7 on an 8 x 8 grid is 24 mma for 16 x 64 sums (16 x 49
// outputs of a 7 x 7 plane). DWNet-T's 7 x 7 stage is this case: on the band and strips
// it spent 49 float32 FMAs per output; here the GEMM is 1 mma per 33 outputs and the
// kernel is left with moving the values (model: NOTES.md, 2026-11-30 third session).
//
// A block owns kBatchChannels = 8 channels (a warp each) x kBatchSamples = 16 samples;
// inputs and outputs go value by value through shared memory (batch_stage.cuh), two
// block barriers.
//
// Exactness: as conn_mma.cuh. The sums are float32 of exact products; T's zeros
// multiply every staged value of the sample and the transpose must add exactly 0 for
// taps outside g, which holds while the staged planes, the filter and the bias are
// finite. Otherwise some sum of the warp is not finite (every tap meets some position of
// the 8 x 8 grid, whose padding is staged zeros): the warp then computes its outputs on
// the direct path (each lane its fragment's outputs, tap by tap from the staged values,
// with the reference's masking). Below sm_80 the direct path always.
#pragma once

#include "batch_stage.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"

namespace lc {

// Output (py, px) of a staged plane tap by tap (float32, b0 first): the batch kernels'
// direct path for sums that are not all finite. x: the sample's staged grid, GW values
// wide, the plane's row qy at grid row qy + RO and its column qx at grid column qx + CO
// (py, px and the grid's rows and columns relative to a tile at y0, x0 of the plane); `pairs`: filter_pairs' (the low value of
// pair (i, j + 1) is w(i, j)). The transpose skips taps outside g, the forward pass
// multiplies the padding's zeros like the reference.
template <class T, int KF, bool FLIP, int GW, int RO, int CO = 0>
LC_DEVICE float batch_direct(const T* x, const uint32_t* pairs, float b0, int py, int px,
                             int32_t H, int32_t W, int32_t y0 = 0, int32_t x0 = 0) {
  float sum = b0;
  for (int i = 0; i < KF; ++i) {
    const int iy = py + i - KF / 2;
    const bool row_in = iy + y0 >= 0 && iy + y0 < H;
    if (FLIP && !row_in) continue;
    for (int j = 0; j < KF; ++j) {
      const int ix = px + j - KF / 2;
      const bool inside = row_in && ix + x0 >= 0 && ix + x0 < W;
      if (FLIP && !inside) continue;
      const T wv = of_bits<T>(uint16_t(pairs[i * (KF + 2) + j + 1]));
      sum += to_float(wv) * (inside ? to_float(x[(iy + RO) * GW + ix + CO]) : 0.0f);
    }
  }
  return sum;
}

// The batch kernels' filter for channel c, a warp's lanes together: the filter_pairs of
// `pairs` (in when this returns) and the bias, which it returns; the warp's `flag` reset.
template <class T, int KF, bool FLIP>
LC_DEVICE float batch_filter(const ConnArgs& a, int64_t c, volatile uint32_t* flag,
                             uint32_t* pairs, int lane) {
  const T* wp = static_cast<const T*>(a.weight) + (c / a.p.cpg) * a.w_s.g;
  // (the bias loaded first: its round trip is the filter's)
  const float bias = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : 0.0f;
  if (lane == 0) flag[0] = 0;
  filter_pairs<T, KF, FLIP>(wp, int32_t(a.w_s.kh), int32_t(a.w_s.kw), pairs, lane);
  sync_warp();  // the pairs are in
  return bias;
}

template <class T, int KF, bool FLIP>
struct ConnBatch {
  static constexpr int S = kBatchSamples, CW = kBatchChannels;
  static constexpr int AS = kBatchStride, CS = kBatchChannelStride;
  static constexpr int PD = KF / 2;      // the padding, both axes
  static constexpr int KT = 4, NT = 8;   // K tiles (2 input rows each), N tiles (output rows)
  static constexpr int64_t kWarpBytes = batch_warp_bytes(KF);
  using Grid = BatchGrid<CW, 8, 8, 0, AS, CS>;  // batch_stage.cuh
  static_assert(CW * 64 == 2 * kThreads, "two grid positions a thread");
  static_assert(CW == kThreads / 32, "a warp per channel");
  using F = float;
  static constexpr int kMinBlocks = 2;  // at most 128 registers

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnBatchPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), warp = tid >> 5, lane = tid & 31;
    const int64_t n0 = block_index() / t.groups * S, c0 = block_index() % t.groups * CW;
    const int64_t c = c0 + warp;
    const bool active = c < p.C;  // (warp-uniform; every warp meets the barriers)
    unsigned char* mine = smem + warp * kWarpBytes;
    volatile uint32_t* flag = reinterpret_cast<uint32_t*>(mine);
    uint32_t* pairs = reinterpret_cast<uint32_t*>(mine + 16);
    T* xs = reinterpret_cast<T*>(smem + CW * kWarpBytes);  // CW channels x S rows of AS
    T* ys = xs + CW * CS;                                    // the outputs, the same
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int ns = int(min_of(int64_t(S), p.N - n0));       // samples of this block

    // this thread's two grid positions (batch_stage.cuh)
    BatchPos pos[2];
LC_UNROLL
    for (int k = 0; k < 2; ++k)
      pos[k] = batch_pos<Grid>(tid + kThreads * k, t.channels_last, H, W, c0, p.C);

    uint32_t bp[KF + 1][2];  // bp[i + 1] = B registers of kernel rows i, i + 1
    F b0 = F(0);
    if (active) b0 = setup(a, c, flag, pairs, lane, bp);
    const T* x = static_cast<const T*>(a.src) + (n0 * a.src_s.n + c0 * a.src_s.c);
LC_UNROLL
    for (int k = 0; k < 2; ++k) batch_load<Grid>(xs, x, a.src_s, pos[k], ns);
    sync_threads();
    if (active) {
      const T* xc = xs + warp * CS;
      T* yc = ys + warp * CS;
      F acc[NT][4];
      if (sums(xc, bp, b0, flag, acc)) {
        const int g = lane >> 2, q = lane & 3;
        // word (sample g + 8h, output row nt, columns 2q, 2q + 1): 32 distinct banks
LC_UNROLL
        for (int nt = 0; nt < NT; ++nt)
LC_UNROLL
          for (int h = 0; h < 2; ++h)
            *reinterpret_cast<uint32_t*>(yc + (g + 8 * h) * AS + 8 * nt + 2 * q) =
                pack_floats<T>(acc[nt][2 * h] + b0, acc[nt][2 * h + 1] + b0);
      } else {
        direct(xc, yc, pairs, b0, H, W, lane);
      }
    }
    sync_threads();
    T* y = static_cast<T*>(a.dst) + (n0 * a.dst_s.n + c0 * a.dst_s.c);
LC_UNROLL
    for (int k = 0; k < 2; ++k) batch_store<Grid>(y, a.dst_s, ys, pos[k], ns);
  }

  // The warp's filter (channel c), all lanes: `pairs`, this lane's B registers of kernel
  // rows i, i + 1 (i = -1..KF - 1) as bp[i + 1]: row i's is pairs[i][u], u = 2q - g + KF/2 + 1
  // (the zero pair outside 0..KF), zero outside the filter (a register pair per mma: with
  // overlapping pairs ptxas moved one register per mma). Returns the bias; `flag` reset.
  static LC_DEVICE F setup(const ConnArgs& a, int64_t c, volatile uint32_t* flag, uint32_t* pairs,
                           int lane, uint32_t (&bp)[KF + 1][2]) {
    const F bias = batch_filter<T, KF, FLIP>(a, c, flag, pairs, lane);
    const int g = lane >> 2, q = lane & 3;
    const int at = pair_slot<KF>(2 * q - g + PD + 1);
    uint32_t b[KF];
LC_UNROLL
    for (int i = 0; i < KF; ++i) b[i] = pairs[i * (KF + 2) + at];
LC_UNROLL
    for (int i = -1; i < KF; ++i) {  // (distinct: one register pair per mma operand)
      bp[i + 1][0] = distinct(i >= 0 ? b[i >= 0 ? i : 0] : 0u);
      bp[i + 1][1] = distinct(i + 1 < KF ? b[i + 1 < KF ? i + 1 : 0] : 0u);
    }
    return bias;
  }

  // The warp's sums (acc; b0 is added when they are stored) on tensor cores; false on
  // every lane if any is not finite (or without mma.sync): the warp then takes the direct
  // path.
  static LC_DEVICE bool sums(const T* xc, const uint32_t (&bp)[KF + 1][2], F b0,
                             volatile uint32_t* flag, F (&acc)[NT][4]) {
    if (!kHaveMma) return false;
LC_UNROLL
    for (int nt = 0; nt < NT; ++nt)
LC_UNROLL
      for (int e = 0; e < 4; ++e) acc[nt][e] = F(0);
LC_UNROLL
    for (int kt = 0; kt < KT; ++kt) {
      uint32_t afr[4];
      load_a(xc + 16 * kt, AS, afr);
LC_UNROLL
      for (int nt = 0; nt < NT; ++nt) {
        const int i0 = 2 * kt - nt + PD;  // kernel rows of the block's two register rows
        if (i0 + 1 < 0 || i0 >= KF) continue;  // compile-time: no tap
        mma_16816<T>(acc[nt], afr, bp[i0 + 1]);
      }
    }
    F probe = b0 * F(0);  // (the bias joins the sums in the epilogue)
LC_UNROLL
    for (int nt = 0; nt < NT; ++nt)
LC_UNROLL
      for (int e = 0; e < 4; ++e) probe += acc[nt][e] * F(0);  // NaN if one is not finite
    return warp_all(probe == F(0), flag);
  }

  // The lane's fragment outputs tap by tap (batch_direct), for a warp whose sums are not
  // all finite.
  static LC_DEVICE void direct(const T* xc, T* yc, const uint32_t* pairs, F b0, int32_t H,
                               int32_t W, int lane) {
    const int g = lane >> 2, q = lane & 3;
    for (int e = 0; e < 4 * NT; ++e) {
      const int py = e >> 2, s = g + 8 * ((e >> 1) & 1), px = 2 * q + (e & 1);
      if (py >= H || px >= W) continue;
      yc[s * AS + 8 * py + px] = from_float<T>(batch_direct<T, KF, FLIP, 8, 0>(
          xc + s * AS, pairs, b0, py, px, H, W));
    }
  }
};

}  // namespace lc
