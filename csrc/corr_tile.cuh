// corr2d for a result shared across positions (Hw = Ww = 1: the weight
// gradient of depth-wise and dynamic depth-wise convolution):
//
//   out[n', g, kh, kw] = sum_{n, c in g, o} a[n, c, o] * b[n, c, i(o, k)]
//
// One block owns one (n', g) result filter and one split of its reduction.
// The reduction is cut into steps (batch when Nw = 1, the channels of the
// group, row tiles, column tiles); per step the block stages a TH x TW tile
// of a and the b rows/columns those outputs read (zero outside the image) in
// shared memory. Thread (slot, lane) owns up to kCorrTaps taps
// (t = slot + j * slots) and sums a * b over the tile's positions
// lane, lane + L, ...; at the end the L lanes of each tap are summed by a
// fixed tree in shared memory (deterministic: no atomics), and the split's
// partial result goes to out (one split) or to its slice of the workspace
// (reduce_splits.cuh adds the slices in order).
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

template <class T>
struct CorrTile {
  using A = acc_t<T>;

  static LC_DEVICE void run(unsigned char* smem_raw, const CorrArgs& a, const CorrTilePlan& t) {
    const Problem& p = a.p;
    A* a_s = reinterpret_cast<A*>(smem_raw);
    A* b_s = a_s + t.TH * t.TW;
    A* red = b_s + t.IH * t.IW;
    int32_t* row_start = reinterpret_cast<int32_t*>(red + block_threads());
    int32_t* col_start = row_start + t.TH;
    const int tid = thread_index();
    const int nthreads = block_threads();
    const int lane = tid % t.L, slot = tid / t.L;

    int64_t blk = block_index();
    const int64_t split = blk % t.splits;
    blk /= t.splits;
    const int64_t g = blk % a.Cw, n_res = blk / a.Cw;
    const int64_t taps = p.h.k * p.w.k;

    // this thread's taps, as offsets into the staged b tile
    int32_t off[kCorrTaps];  // < IH * IW, which fits shared memory
    bool has[kCorrTaps];
    LC_UNROLL
    for (int j = 0; j < kCorrTaps; ++j) {
      const int64_t tap = slot + int64_t(j) * t.slots;
      has[j] = j < t.taps_per_thread && tap < taps;
      off[j] = has[j] ? int32_t((tap / p.w.k) * p.h.d * t.IW + (tap % p.w.k) * p.w.d) : 0;
    }
    A acc[kCorrTaps];
    LC_UNROLL
    for (int j = 0; j < kCorrTaps; ++j) acc[j] = A(0);

    const int64_t reduce_n = a.Nw == 1 ? p.N : 1;
    const int64_t steps = reduce_n * p.cpg * t.row_tiles * t.col_tiles;
    const int64_t s_begin = split * steps / t.splits, s_end = (split + 1) * steps / t.splits;
    const T* A_ = static_cast<const T*>(a.a);
    const T* B_ = static_cast<const T*>(a.b);
    for (int64_t s = s_begin; s < s_end; ++s) {
      int64_t r = s;
      const int64_t ct = r % t.col_tiles;
      r /= t.col_tiles;
      const int64_t rt = r % t.row_tiles;
      r /= t.row_tiles;
      const int64_t c = g * p.cpg + r % p.cpg;
      const int64_t n = a.Nw == 1 ? r / p.cpg : n_res;
      const int64_t oh0 = rt * t.TH, ow0 = ct * t.TW;
      const int64_t oh1 = min_of(oh0 + t.TH, p.h.out) - 1, ow1 = min_of(ow0 + t.TW, p.w.out) - 1;
      int64_t lo_h, ext_h, lo_w, ext_w;
      input_span(p.h, p.window, oh0, oh1, &lo_h, &ext_h);
      input_span(p.w, p.window, ow0, ow1, &lo_w, &ext_w);

      sync_threads();  // the previous step is done with the tiles
      const T* ap = A_ + n * a.a_s.n + c * a.a_s.c;
      const TileSpan a_span{1, t.TH, t.TW, oh0, oh1 - oh0 + 1, ow0, ow1 - ow0 + 1, p.h.out,
                            p.w.out, a.a_s.h, a.a_s.w};
      stage_tile<T>(a_s, a_span, t.vec_a, [&](int64_t) { return ap; });
      const T* bp = B_ + n * a.b_s.n + c * a.b_s.c;
      const TileSpan b_span{1, t.IH, t.IW, lo_h, ext_h, lo_w, ext_w, p.h.in, p.w.in,
                            a.b_s.h, a.b_s.w};
      stage_tile<T>(b_s, b_span, t.vec_b, [&](int64_t) { return bp; });
      for (int64_t e = tid; e < t.TH; e += nthreads)
        row_start[e] = int32_t(window_start(p.h, p.window, min_of(oh0 + e, oh1)) - lo_h);
      for (int64_t e = tid; e < t.TW; e += nthreads)
        col_start[e] = int32_t(window_start(p.w, p.window, min_of(ow0 + e, ow1)) - lo_w);
      sync_threads();

      // the tile's valid positions q = lane, lane + L, ... (row-major in vh x vw);
      // a tile fits shared memory, so 32-bit index arithmetic
      const int32_t vw = int32_t(ow1 - ow0 + 1), npos = int32_t(oh1 - oh0 + 1) * vw;
      const int32_t TW = int32_t(t.TW), IW = int32_t(t.IW), L = int32_t(t.L);
      for (int32_t q = lane; q < npos; q += L) {
        const int32_t py = q / vw, px = q - py * vw;
        const A av = a_s[py * TW + px];
        const A* bq = b_s + row_start[py] * IW + col_start[px];
        LC_UNROLL
        for (int j = 0; j < kCorrTaps; ++j)
          if (has[j]) acc[j] += av * bq[off[j]];
      }
    }

    // sum the L lanes of every tap: a fixed tree, then one store per tap
    const int64_t numel = a.Nw * a.Cw * taps;
    LC_UNROLL
    for (int j = 0; j < kCorrTaps; ++j) {
      if (j >= t.taps_per_thread) break;  // the same for the whole block
      sync_threads();
      red[tid] = acc[j];
      sync_threads();
      for (int stride = t.L / 2; stride > 0; stride /= 2) {
        if (lane < stride) red[tid] += red[tid + stride];
        sync_threads();
      }
      if (lane == 0 && has[j]) {
        const int64_t idx = (n_res * a.Cw + g) * taps + slot + int64_t(j) * t.slots;
        if (t.splits == 1)
          store_acc(static_cast<T*>(a.out) + idx, red[tid]);
        else
          static_cast<A*>(a.workspace)[split * numel + idx] = red[tid];
      }
    }
  }
};

}  // namespace lc
