// The depth-wise weight gradient (corr2d with a per-channel result, static Nw = 1 or
// per-sample Nw = N) of small planes: a KF x KF window (3, 5, 7) with padding KF / 2,
// stride 1, dilation 1, planes of width W (7 or 14, a template argument: DWNet-T's,
// ConvNeXt's and Swin's 7 x 7 and 14 x 14 stages at 224 px) and of at most 16 rows, any
// layout and strides; float32 sums of float32 values, or of 16-bit ones staged as
// float32 (plan.h: per-sample results, which have no reuse across samples for tensor
// cores; a static one runs the batch on them).
//
//   out[n', c, i, j] = sum_{n, y, x} G[n, c, y, x] X[n, c, y + i - KF/2, x + j - KF/2]
//
// Float32 has no tensor-core path that keeps its accuracy, so the bound is the FMA pipe:
// every product is one FFMA, and what else a product costs is what this kernel saves. A
// thread holds all KF x KF sums of one channel in registers for a whole split: the
// block's 32 lanes are 32 consecutive channels (corr_channels.cuh), its 8 warps share
// the items of the split, an item being one output row y of one sample. Per item the
// thread loads G's row (W values) once and, for each kernel row i whose input row
// y + i - KF/2 lies in the plane, X's row (W values) once, and multiplies every pair
// (x, j) whose column x + j - KF/2 lies in the plane: with W a constant those are
// chosen at compile time, so there are no masks, no padding products and no index
// arithmetic in the loop (x loads: about 1 per 6 FFMA at 14 x 14 K = 7).
//
// The block stages up to 4 samples at a time: G's and X's planes of its 32 channels in
// shared memory as [position][33] words (reg_stage.cuh: a warp's loads of a position
// meet 32 distinct banks; coalesced in either layout). Lanes past C stage zeros. At the
// end the warps' sums are added in a fixed order (reduce: deterministic, no atomics), into
// the result or a split's slice of the workspace (plan.h plan_corr_reg).
//
// Exactness: the reference's sums, in another order: float32 FFMA of the same products.
// The padding's products (G times zeros) are left out: they add nothing unless a G value
// is not finite, which a row's sum of G shows; a thread that met such a row (rare) adds
// them after all, from G's rows in global memory, as NaN where the reference's are.
#pragma once

#include "corr_channels.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"
#include "reg_stage.cuh"

namespace lc {

template <class T, int KF, int W>
struct CorrReg {
  static_assert(sizeof(T) <= 4, "float32, float16, bfloat16 (float32 sums)");
  static constexpr int PD = KF / 2, TAPS = KF * KF;
  static constexpr int LS = kRegLaneStride;  // a position's 32 lanes, then the next position
  static constexpr int kMinBlocks = 2;       // at most 128 registers
  using F = float;

  static LC_DEVICE void run(unsigned char* smem, const CorrArgs& a, const CorrChannelsPlan& t) {
    const Problem& p = a.p;
    const ChannelBlock b = channel_block(p, t);
    const int32_t H = int32_t(p.h.in);
    const int S = int(t.samples), R = kCorrRowsGroups / S;  // sample slots, warps a slot
    const int slot = b.group / R, part = b.group % R;
    const int64_t words = reg_plane_words(H, W);  // a staged plane
    F* gs = reinterpret_cast<F*>(smem);  // slot s's G: [HW][LS] at gs + 2 s words, X after it
    const int64_t c0 = b.c - b.lane;
    const int32_t chans = int32_t(min_of(int64_t(32), p.C - c0));
    const T* A_ = static_cast<const T*>(a.a) + c0 * a.a_s.c;
    const T* B_ = static_cast<const T*>(a.b) + c0 * a.b_s.c;
    const RegOrder oa = reg_order(a.a_s, p.C, W, H, A_), ob = reg_order(a.b_s, p.C, W, H, B_);

    F acc[TAPS];
LC_UNROLL
    for (int k = 0; k < TAPS; ++k) acc[k] = F(0);

    if (a.Nw == 1) {
      // a static result: the split's items (sample, output row) over the 8 warps in turn,
      // S samples staged at a time
      const int64_t items = p.N * H;
      const int64_t i_begin = b.split * items / t.splits, i_end = (b.split + 1) * items / t.splits;
      int64_t it = i_begin + b.group;  // this warp's next item
      F bad = F(0);  // NaN once a G row has a value that is not finite
      for (int64_t n0 = i_begin / H; n0 * H < i_end; n0 += S) {  // the samples the split meets
        sync_threads();  // (the previous round's loads are done)
        for (int s = 0; s < S && (n0 + s) * H < i_end; ++s)
          stage_sample(gs + 2 * s * words, a, A_, B_, n0 + s, oa, ob, chans, H);
        sync_threads();
        for (; it < i_end && it < (n0 + S) * H; it += kCorrRowsGroups) {
          const int32_t q = int32_t(it - n0 * H), s = q / H;  // (slot, row)
          bad += row(acc, gs + 2 * s * words + b.lane, gs + (2 * s + 1) * words + b.lane, q - s * H, H);
        }
      }
      if (!(bad == F(0))) padding_rows(acc, a, b, i_begin + b.group, i_end, kCorrRowsGroups, H);
      reduce(reinterpret_cast<F*>(smem), a, t, b, acc, 1, kCorrRowsGroups);
    } else {
      // per-sample results: S samples staged at once, R warps a sample (rows part, part + R, ..)
      const int64_t n0 = b.n_res * S;
      for (int s = 0; s < S && n0 + s < p.N; ++s)
        stage_sample(gs + 2 * s * words, a, A_, B_, n0 + s, oa, ob, chans, H);
      sync_threads();
      F bad = F(0);
      if (n0 + slot < p.N)  // (warp-uniform)
        for (int32_t y = part; y < H; y += R)
          bad += row(acc, gs + 2 * slot * words + b.lane, gs + (2 * slot + 1) * words + b.lane, y, H);
      if (!(bad == F(0))) padding_rows(acc, a, b, (n0 + slot) * H + part, (n0 + slot + 1) * H, R, H);
      reduce(reinterpret_cast<F*>(smem), a, t, b, acc, S, R);
    }
  }

  // Sample n's G and X planes of the block's channels into `to` (G, then X a plane later).
  static LC_DEVICE void stage_sample(F* to, const CorrArgs& a, const T* A_, const T* B_, int64_t n,
                                     RegOrder oa, RegOrder ob, int32_t chans, int32_t H) {
    reg_stage<W>(to, A_ + n * a.a_s.n, a.a_s, oa, chans, H);
    reg_stage<W>(to + reg_plane_words(H, W), B_ + n * a.b_s.n, a.b_s, ob, chans, H);
  }

  // The warps' sums: result (slot s, lane, tap) adds slot s's R warps' in order (a static
  // result: the block's 8), RT taps a round through shared memory ([lane][warp][tap], a
  // lane's row 8 RT + 1 words: the stores of a tap meet distinct banks, and the loads of a
  // lane's taps are consecutive), and stores them a channel's taps together (coalesced).
  static LC_DEVICE void reduce(F* red, const CorrArgs& a, const CorrChannelsPlan& t,
                               const ChannelBlock& b, const F (&acc)[TAPS], int S, int R) {
    constexpr int RT = reg_reduce_taps(KF), LSTR = 8 * RT + 1;
    const Problem& p = a.p;
    const int tid = thread_index();
    const int64_t c0 = b.c - b.lane, numel = a.Nw * p.C * TAPS;
LC_UNROLL
    for (int t0 = 0; t0 < TAPS; t0 += RT) {
      sync_threads();
LC_UNROLL
      for (int k = 0; k < RT; ++k)
        if (t0 + k < TAPS) red[b.lane * LSTR + b.group * RT + k] = acc[t0 + k];
      sync_threads();
      for (int e = tid; e < S * 32 * RT; e += kThreads) {
        const int s = e / (32 * RT), l = e / RT % 32, k = e % RT;
        const int64_t c = c0 + l, n = a.Nw == 1 ? 0 : b.n_res * S + s;
        if (t0 + k >= TAPS || c >= p.C || n >= a.Nw) continue;
        F sum = F(0);
        for (int r = 0; r < R; ++r) sum += red[l * LSTR + (s * R + r) * RT + k];
        const int64_t idx = (n * p.C + c) * TAPS + t0 + k;
        if (t.splits == 1)
          store_acc(static_cast<T*>(a.out) + idx, sum);
        else
          static_cast<F*>(a.workspace)[b.split * numel + idx] = sum;
      }
    }
  }

  // Output row y's products: G's row once, X's row y + i - PD once per kernel row inside.
  // Returns 0, or NaN if a G value of the row is not finite (or their sum overflows).
  static LC_DEVICE F row(F (&acc)[TAPS], const F* g_at, const F* x_at, int32_t y, int32_t H) {
    F g[W], probe = F(0);
LC_UNROLL
    for (int x = 0; x < W; ++x) {
      g[x] = g_at[(y * W + x) * LS];
      probe += g[x];
    }
    reg_row_pairs<KF, W>(x_at, y, H, [&](int i, int j, int x, F v) { acc[i * KF + j] += g[x] * v; });
    return probe - probe;
  }

  // The reference's products of the G rows of the thread's items (`first`, + `step`, ..
  // before `end`: item q is sample q / H's row q % H) with the padding's zeros, left out
  // by row(): where a G value is not finite they make its taps NaN (finite values add
  // zeros). A rare path: G's rows loaded again, from global memory.
  static LC_DEVICE void padding_rows(F (&acc)[TAPS], const CorrArgs& a, const ChannelBlock& b,
                                     int64_t first, int64_t end, int step, int32_t H) {
    LC_RARE_PATH();
    if (!b.c_ok) return;
    const T* g0 = static_cast<const T*>(a.a) + b.c * a.a_s.c;
    for (int64_t q = first; q < end; q += step) {
      const int64_t n = q / H;
      const int32_t y = int32_t(q - n * H);
      const T* at = g0 + n * a.a_s.n + y * a.a_s.h;
      F g[W];
LC_UNROLL
      for (int x = 0; x < W; ++x) g[x] = load_acc(at + x * a.a_s.w);
      padding(acc, g, y, H);
    }
  }

  // Row y's share of padding_rows: tap (i, j) meets the padding at every column if row
  // y + i - PD is outside the plane, else at columns x < PD - j and x >= W + PD - j.
  static LC_DEVICE void padding(F (&acc)[TAPS], const F (&g)[W], int32_t y, int32_t H) {
    F head[PD + 1], tail[PD + 1], all = F(0);  // columns x < m, x >= W - m; every column
    head[0] = tail[0] = F(0);
LC_UNROLL
    for (int m = 1; m <= PD; ++m) {
      head[m] = head[m - 1] + g[m - 1] * F(0);
      tail[m] = tail[m - 1] + g[W - m] * F(0);
    }
LC_UNROLL
    for (int x = 0; x < W; ++x) all += g[x] * F(0);
LC_UNROLL
    for (int i = 0; i < KF; ++i) {
      const bool out = y + i - PD < 0 || y + i - PD >= H;
LC_UNROLL
      for (int j = 0; j < KF; ++j)
        acc[i * KF + j] += out ? all : (j < PD ? head[PD - j] : F(0)) + (j > PD ? tail[j - PD] : F(0));
    }
  }
};

}  // namespace lc
