// conn2d (and the flipped conn2d_transpose) for NCHW-like input and result: the
// register-blocked strips of conn_strip.cuh reading a band of input rows that the
// block stages in shared memory. KF x KF kernel (3, 5, 7), stride 1, dilation 1,
// the column padding KF / 2, a weight shared across positions (depth-wise, static
// or dynamic); float32 sums for every dtype but float64 (plan.h).
//
// A block owns P planes (n, c) x a band of BR row strips (BR * RS output rows) x
// every column strip. It stages the input rows the band reads, as float32 and zero
// outside the image, with 16-byte loads (rows 16-byte aligned, a whole number of
// chunks long; else value by value) into rows of IW floats, input column iw at
// float L + iw (L: one chunk of the source, so chunks stay aligned on both sides).
// Then each thread runs one strip (RS x kStripCols outputs, its KF x KF filter in
// registers: the same sliding window as conn_strip.cuh, strip_row_products): every
// staged row it reads is NCH 16-byte shared loads at compile-time offsets, with no
// bounds checks (the padding is in the band) and no global traffic but the band's
// one pass and the outputs. Against conn_strip.cuh (rows loaded from global memory
// through L1, one check per chunk, the halo re-read by every strip) the L1 traffic
// and the per-load checks go; the cost is one barrier and the band's staging.
//
// FLIP runs conn2d_transpose as a forward pass over g with the flipped filter: the
// staged zeros outside g are exact while the filter is finite (checked per thread);
// a thread whose filter is not skips rows outside g and masks columns outside it.
#pragma once

#include "conn_strip.cuh"
#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"
#include "window.h"

namespace lc {

template <class T, int KF, bool FLIP>
struct ConnBand {
  using A = float;
  static constexpr int RS = strip_rows(KF);  // output rows per thread
  static constexpr int CS = kStripCols;      // output columns per thread
  static constexpr int NV = CS + KF - 1;     // staged columns a strip reads per row
  static constexpr int L = band_lead(int(sizeof(T)));  // band float of input column 0
  // strip k reads floats L - KF / 2 + CS k ...: from the aligned 4-float chunk BASE + CS k,
  // OFF floats into it
  static constexpr int OFF = (L - KF / 2) % 4;
  static constexpr int BASE = L - KF / 2 - OFF;
  static constexpr int NCH = (OFF + NV + 3) / 4;  // 16-byte shared loads per row
  static_assert(CS % 4 == 0 && BASE % 4 == 0 && CS * sizeof(T) % 16 == 0,
                "shared loads and whole strips' stores stay 16-byte aligned");
  static_assert(BASE + NCH * 4 <= band_reach(KF, int(sizeof(T))), "plan.h's row length");
  // two blocks of 256 threads per SM (<= 128 registers: 49 taps, 32 sums, 16 values)
  static constexpr int kMinBlocks = 2;

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnBandPlan& t) {
    const Problem& p = a.p;
    // shared memory: the planes' offsets (kBandTable each), then the band
    int64_t* bases = reinterpret_cast<int64_t*>(smem);
    float* band = reinterpret_cast<float*>(smem + band_table_bytes(t.P));
    const int tid = thread_index();
    const int32_t IH = int32_t(t.IH), IW = int32_t(t.IW), BR = int32_t(t.BR);
    const int64_t planes = p.N * p.C;
    const int64_t b = block_index();
    const int32_t band_i = int32_t(b % t.bands);
    const int64_t plane0 = b / t.bands * t.P;
    const int32_t oh_band = band_i * BR * RS;  // the band's first output row
    stage(bases, band, a, t, plane0, oh_band - int32_t(p.h.p));

    // this thread's strip: column strips fastest, then row strips, then planes
    const int32_t s = t.by_cols.div(tid), pl = t.by_br.div(s);
    const int32_t cs = tid - s * int32_t(t.col_strips), rb = s - pl * BR;
    const int64_t plane = plane0 + pl;
    const int32_t oh0 = oh_band + rb * RS, ow0 = cs * CS;
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out);
    if (pl >= t.P || plane >= planes || oh0 >= Ho) return;
    const int64_t* offsets = bases + kBandTable * pl;  // the plane's (stage)

    // the filter (flipped for FLIP), in registers: dense (plan.h), its taps at constant
    // offsets
    const T* wp = opaque(static_cast<const T*>(a.weight) + offsets[1]);
    A f[KF][KF];
    load_dense_filter<FLIP>(f, wp);
    const A b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + offsets[3]) : A(0);
    A acc[RS][CS];
    start_sums(acc, b0);

    const float* rows = band + (pl * IH + rb * RS) * IW + ow0 + BASE;
    const bool finite = !FLIP || taps_finite(f);  // FLIP: the band's zeros are then exact
    uint32_t rows_in = ~0u;  // FLIP: which of the strip's input rows are inside g
    if (FLIP) {
      const int32_t ih0 = oh0 - int32_t(p.h.p);
LC_UNROLL
      for (int i = 0; i < RS + KF - 1; ++i)
        if (ih0 + i < 0 || ih0 + i >= int32_t(p.h.in)) rows_in &= ~(1u << i);
    }
    if (finite) {
      accumulate(acc, f, rows, IW, rows_in);
    } else {
      band_products_masked<OFF>(acc, f, rows, IW, 1, rows_in,
                                columns_inside<NV>(ow0 - int32_t(p.w.p), p.w.in));
    }

    // the outputs: 16 bytes at a time where the result's rows allow it (plan.h) and the
    // strip is whole, else value by value
    T* y = static_cast<T*>(a.dst) + offsets[2];
    const int32_t dh = int32_t(a.dst_s.h);
    const bool whole = t.vec_out && ow0 + CS <= Wo;
LC_UNROLL
    for (int r = 0; r < RS; ++r) {
      const int32_t oh = oh0 + r;
      if (oh >= Ho) break;
      T* yr = y + oh * dh + ow0;
      if (whole) {
        T out[CS];
LC_UNROLL
        for (int j = 0; j < CS; ++j) out[j] = from_float<T>(acc[r][j]);
LC_UNROLL
        for (int j = 0; j < CS; j += 16 / int(sizeof(T))) LC_COPY16(yr + j, out + j);
      } else {
LC_UNROLL
        for (int j = 0; j < CS; ++j)
          if (ow0 + j < Wo) store_acc(yr + j, acc[r][j]);
      }
    }
  }

  // acc += the strip's products from the band (rows outside g skipped: FLIP's only
  // add zeros, a plane's border strips the fewer products)
  static LC_DEVICE void accumulate(A (&acc)[RS][CS], const A (&f)[KF][KF], const float* rows,
                                   int32_t IW, uint32_t rows_in) {
    const SmemAddr at = smem_addr(rows);
LC_UNROLL
    for (int i = 0; i < RS + KF - 1; ++i) {
      if (FLIP && !((rows_in >> i) & 1)) continue;
      A v[NCH * 4];
LC_UNROLL
      for (int ch = 0; ch < NCH; ++ch) LC_LOAD_SHARED_F4(v + 4 * ch, at + (i * IW + 4 * ch) * 4);
      strip_row_products<false, OFF>(acc, f, v, i, 0);
    }
  }

  // The block's band: first the planes' offsets into `bases` (source, less the lead
  // chunk; filter; result; bias); then for planes plane0 .. + P - 1 (those that
  // exist), input rows ih0 .. ih0 + IH - 1 as IW floats each, zero outside the
  // image: consecutive threads take consecutive 16-byte chunks of the rows (chunk q
  // holds input columns (q - 1) V .. q V - 1, V = L values of T), row and plane by
  // multiply-high divisions (plan.h).
  static LC_DEVICE void stage(int64_t* bases, float* band, const ConnArgs& a,
                              const ConnBandPlan& t, int64_t plane0, int32_t ih0) {
    constexpr int V = L;
    const Problem& p = a.p;
    const int tid = thread_index(), nthreads = block_threads();
    const int32_t IH = int32_t(t.IH), IW = int32_t(t.IW), QC = IW / V;
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in), sh = int32_t(a.src_s.h);
    const int32_t have = int32_t(min_of(int64_t(t.P), p.N * p.C - plane0));  // planes here
    for (int32_t i = tid; i < have; i += nthreads) {  // one 64-bit division a plane
      const int64_t plane = plane0 + i, n = plane / p.C, c = plane % p.C;
      int64_t* o = bases + kBandTable * i;
      o[0] = n * a.src_s.n + c * a.src_s.c - V;  // source (less the lead chunk)
      o[1] = n * a.w_s.n + c / p.cpg * a.w_s.g;  // filter
      o[2] = n * a.dst_s.n + c * a.dst_s.c;      // result
      o[3] = c * a.bias_s;                       // bias
    }
    sync_threads();
    const T* src = static_cast<const T*>(a.src);
    for (int32_t e = tid; e < have * IH * QC; e += nthreads) {
      const int32_t rr = t.by_chunks.div(e), q = e - rr * QC;  // band row rr, chunk q
      const int32_t pl = t.by_rows.div(rr), ih = ih0 + rr - pl * IH;
      const bool row_in = ih >= 0 && ih < H;
      const T* xr = src + bases[kBandTable * pl] + ih * sh + q * V;  // column (q - 1) V
      T buf[V];
      if (t.vec) {  // a chunk inside the image, or zeros
        if (row_in && q >= 1 && (q - 1) * V < W) {
          load_chunk<T, V>(xr, buf);
        } else {
LC_UNROLL
          for (int j = 0; j < V; ++j) buf[j] = from_float<T>(0.0f);
        }
      } else {  // value by value (rows not aligned)
LC_UNROLL
        for (int j = 0; j < V; ++j) {
          const int32_t iw = (q - 1) * V + j;
          buf[j] = row_in && iw >= 0 && iw < W ? xr[j] : from_float<T>(0.0f);
        }
      }
      float out[V];
LC_UNROLL
      for (int j = 0; j < V; ++j) out[j] = to_float(buf[j]);
      float* d = band + rr * IW + q * V;
LC_UNROLL
      for (int j = 0; j < V; j += 4) LC_COPY16(d + j, out + j);  // 16-byte stores
    }
    sync_threads();
  }
};

}  // namespace lc
