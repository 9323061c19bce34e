// conn2d (and the flipped conn2d_transpose) on small planes: a depth-wise filter (static,
// or each sample's own) of KF x KF taps (3, 5, 7) with padding KF / 2, stride 1,
// dilation 1, planes of width W (7 or 14, a template argument) and at most 16 rows, any
// layout and strides (corr_reg.cuh's planes, the other direction); float32 sums of
// float32 values, or of 16-bit ones staged as float32 (plan.h: per-sample filters on
// planes 7 wide, where tensor cores find no reuse across samples).
//
//   y[n, c, oy, ox] = bias[c] + sum_{i, j} w[n', c, i, j] x[n, c, oy + i - KF/2, ox + j - KF/2]
//
// A thread holds its channel's KF x KF filter in registers: the block's 32 lanes are 32
// consecutive channels, its 8 warps S sample slots (S = 1, 2 or 4 samples staged at
// once) of 8 / S warps, which take the slot's output rows in turn. Per output row a
// thread keeps W sums and loads each input row it meets (W values) once; every product
// inside the plane is one FFMA, chosen at compile time (no masks, no padding products).
// Input and output planes move through shared memory (reg_stage.cuh), coalesced in
// either layout. On 7 x 7 planes a warp's rows are unrolled (reg_rows): the kernel rows
// inside the plane and the staged rows' offsets are constants.
//
// Exactness: the reference's sums (bias first), float32 FFMA of the same products. The
// forward reference's padding products (filter taps times zeros) are left out: they add
// nothing unless a tap is not finite, which the filter's sum shows; a thread whose filter
// has such a tap (rare) adds them to its outputs afterwards, NaN where the reference's
// are. The transpose's reference (a gather) has none.
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "reg_stage.cuh"

namespace lc {

template <class T, int KF, int W, bool FLIP>
struct ConnReg {
  static_assert(sizeof(T) <= 4, "float32, float16, bfloat16 (float32 sums)");
  static constexpr int PD = KF / 2, TAPS = KF * KF;
  static constexpr int LS = kRegLaneStride;
  static constexpr int kMinBlocks = 2;  // at most 128 registers
  using F = float;

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnRegPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), lane = tid & 31, warp = tid >> 5;
    const int64_t c_tiles = ceil_div(p.C, int64_t(32));
    const int64_t c0 = block_index() % c_tiles * 32, n0 = block_index() / c_tiles * t.samples;
    const int S = int(t.samples), R = kThreads / 32 / S, slot = warp / R, part = warp % R;
    const int32_t H = int32_t(p.h.in), chans = int32_t(min_of(int64_t(32), p.C - c0));
    const int ns = int(min_of(int64_t(S), p.N - n0));
    const int64_t words = reg_plane_words(H, W);
    F* xs = reinterpret_cast<F*>(smem);  // slot s: its input plane at 2 s planes, output after
    const T* x = static_cast<const T*>(a.src) + (n0 * a.src_s.n + c0 * a.src_s.c);
    T* out = static_cast<T*>(a.dst) + (n0 * a.dst_s.n + c0 * a.dst_s.c);
    const RegOrder in_order = reg_order(a.src_s, p.C, W, H, x, true);
    const RegOrder out_order = reg_order(a.dst_s, p.C, W, H, out, true);
    // (kSpan: the walk made once for the samples, at most kThreads / 64: plan.h reg_samples)
    if (W == 7 && in_order == RegOrder::kSpan)
      reg_span_stage<W, kThreads / 64, 2>(xs, chans, ns, [&](int s) { return x + s * a.src_s.n; });
    else
      for (int s = 0; s < ns; ++s) reg_stage<W>(xs + 2 * s * words, x + s * a.src_s.n, a.src_s, in_order, chans, H);

    // the lane's filter (an idle lane's: the last channel's), flipped for FLIP
    const int cl = min_of(lane, chans - 1), sl = min_of(slot, ns - 1);
    const int64_t c = c0 + cl, n = n0 + sl;
    F w[TAPS], probe = F(0);
    if (sizeof(T) == 4 && packed_filters(a, H) && (a.w_s.n == 0 || R >= 4)) {
      // the block's filters (each sample's: a span of 32 x TAPS values) into the slots'
      // output planes, then each lane's taps from there (conflict-free: TAPS is odd)
      const bool shared_w = a.w_s.n == 0;  // one filter for every slot
      const T* wp = static_cast<const T*>(a.weight) + (n0 * a.w_s.n + c0 * a.w_s.g);
      for (int s = 0; s < (shared_w ? 1 : ns); ++s)
        stage_filters(xs + (2 * s + 1) * words, wp + s * a.w_s.n, chans * TAPS, tid);
      sync_threads();
      const F* mine = xs + (2 * (shared_w ? 0 : sl) + 1) * words + cl * TAPS;
      load_filter(w, [&](int i, int j) { return mine + (i * KF + j); });
    } else {
      const T* wp = static_cast<const T*>(a.weight) + (n * a.w_s.n + (c / p.cpg) * a.w_s.g);
      if (a.w_s.kw == 1 && a.w_s.kh == KF)  // the usual filter: its taps at constant offsets
        load_filter(w, [&](int i, int j) { return wp + (i * KF + j); });
      else
        load_filter(w, [&](int i, int j) { return wp + (i * a.w_s.kh + j * a.w_s.kw); });
    }
LC_UNROLL
    for (int k = 0; k < TAPS; ++k) probe += w[k];
    const F b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + c * a.bias_s) : F(0);
    sync_threads();  // (the filters read, before the output planes are written)
    if (slot < ns) {  // (warp-uniform)
      const F* x_at = xs + 2 * slot * words + lane;
      F* y_at = xs + (2 * slot + 1) * words + lane;
      reg_rows<W>(part, R, H, [&](int32_t y, int32_t h) { row(w, b0, x_at, y_at, y, h); });
      // (rare: the lane alone; the transpose's reference has no padding products)
      if (!FLIP && !(probe - probe == F(0))) padding(w, y_at, part, R, H);
    }
    sync_threads();
    if (W == 7 && out_order == RegOrder::kSpan)
      reg_span_unstage<W, kThreads / 64, 2>(xs + words, chans, ns, [&](int s) { return out + s * a.dst_s.n; });
    else
      for (int s = 0; s < ns; ++s)
        reg_unstage<W>(out + s * a.dst_s.n, xs + (2 * s + 1) * words, a.dst_s, out_order, chans, H);
  }

  // Where the block's filters are each sample's span of 32 channels x TAPS taps (a
  // depth-wise weight, taps in order) and an output plane holds one: rather than 32-way
  // scattered loads (lane = channel: 32 sectors a load, 8 warps loading the same taps),
  // coalesced loads into shared memory, read from there. run() takes it where at least 4
  // warps read each filter: it adds 2 TAPS / (warps a filter) instructions a thread
  // (model, float32 7 x 7 static: 7.2-8.5 -> 7.0-8.2 us, channels_last; a sample's
  // filter for 2 warps, dynamic float16 7 x 7: 7.8-9.2 -> 8.2-9.8, left direct; 16-bit
  // planes run here with per-sample filters only, 7 wide: 2 warps a filter, no code for it)
  static LC_DEVICE bool packed_filters(const ConnArgs& a, int32_t H) {
    return a.p.cpg == 1 && a.w_s.g == TAPS && a.w_s.kh == KF && a.w_s.kw == 1 &&
           reg_plane_words(H, W) >= 32 * TAPS;
  }
  static LC_DEVICE void stage_filters(F* to, const T* from, int32_t count, int tid) {
    for (int32_t f = tid; f < count; f += kThreads) to[f] = load_acc(from + f);
  }

  // The filter's taps (`at(i, j)`: tap (i, j)'s address), flipped for FLIP
  template <class At>
  static LC_DEVICE void load_filter(F (&w)[TAPS], At&& at) {
LC_UNROLL
    for (int i = 0; i < KF; ++i)
LC_UNROLL
      for (int j = 0; j < KF; ++j) w[i * KF + j] = load_acc(at(FLIP ? KF - 1 - i : i, FLIP ? KF - 1 - j : j));
  }

  // Output row y: W sums, the input row y + i - PD once per kernel row inside the plane.
  static LC_DEVICE void row(const F (&w)[TAPS], F b0, const F* x_at, F* y_at, int32_t y, int32_t H) {
    F o[W];
LC_UNROLL
    for (int x = 0; x < W; ++x) o[x] = b0;
    reg_row_pairs<KF, W>(x_at, y, H, [&](int i, int j, int x, F v) { o[x] += w[i * KF + j] * v; });
LC_UNROLL
    for (int x = 0; x < W; ++x) y_at[(y * W + x) * LS] = o[x];
  }

  // The reference's products of the filter with the padding's zeros, left out by row():
  // where a tap is not finite they make the outputs whose windows it puts on the padding
  // NaN (finite taps add zeros). Output (y, x) meets the padding at every tap of kernel
  // row i if row y + i - PD is outside the plane, else at taps j with x + j - PD outside.
  static LC_DEVICE void padding(const F (&w)[TAPS], F* y_at, int part, int R, int32_t H) {
    LC_RARE_PATH();
    F rows[KF];  // kernel row i's taps times zero
LC_UNROLL
    for (int i = 0; i < KF; ++i) {
      rows[i] = F(0);
LC_UNROLL
      for (int j = 0; j < KF; ++j) rows[i] += w[i * KF + j] * F(0);
    }
    for (int32_t y = part; y < H; y += R)
LC_UNROLL
      for (int x = 0; x < W; ++x) {
        F add = F(0);
LC_UNROLL
        for (int i = 0; i < KF; ++i) {
          F cols = F(0);
LC_UNROLL
          for (int j = 0; j < KF; ++j)
            if (x + j - PD < 0 || x + j - PD >= W) cols += w[i * KF + j] * F(0);
          add += (y + i - PD < 0 || y + i - PD >= H) ? rows[i] : cols;
        }
        y_at[(y * W + x) * LS] += add;
      }
  }
};

}  // namespace lc
