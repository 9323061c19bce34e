// conn2d (and the flipped conn2d_transpose) for the large fixed windows in float32:
// KF x KF = 13 x 13 or 31 x 31, stride 1, dilation 1, the column padding KF / 2, a
// weight shared across positions (depth-wise, static or dynamic), NCHW-like planes
// (any strides; channels_last images come here through planes, plan.h plan_planes).
//
//   y[n, c, oh, ow] = bias[c] + sum_{kh, kw} W[n, c, kh, kw] x[n, c, oh - ph + kh, ow - pw + kw]
//
// The roofline here is the multiply-adds (KF * KF an output, 169 or 961 float32
// FFMA), so the kernel is built around keeping the FMA pipe busy: a thread owns a strip
// of kWideCols outputs of one row; per kernel row it loads the strip's NV = kWideCols +
// KF - 1 input values (NCH 16-byte shared loads at compile-time offsets) and the
// filter row (KFP / 4 16-byte loads, the same address for every lane: broadcasts),
// then does KF * kWideCols FFMA from registers: one shared load per ~10 FFMA (13) or
// ~14 (31), no bounds checks (the padding is staged), no global traffic but one pass
// over the block's input band and the filter.
//
// A block owns P planes (n, c) x a band of BR output rows x every column strip. It
// stages the planes' filters (flipped for FLIP) as rows of KFP floats and the band's
// input rows (BR + KF - 1 of them) as IW floats each (IW = 4 mod 8: the two rows of a
// quarter warp's 16-byte loads fall in different banks), input column iw at float
// wide_lead(KF) + iw, zero outside the image, value by value (coalesced along rows).
//
// FLIP runs conn2d_transpose as a forward pass over g with the flipped filter (plan.h
// flipped_transpose): the staged zeros are exact while the plane's filter is finite (a
// per-plane flag found while staging it); otherwise the thread skips kernel rows
// outside g and selects 0 for the products of columns outside it, as the reference's
// missing candidates.
#pragma once

#include "mma.cuh"
#include "params.h"
#include "plan.h"
#include "portable.h"
#include "stage.cuh"

namespace lc {

template <class T, int KF, bool FLIP>
struct ConnWide {
  using A = float;
  static constexpr int CS = kWideCols;            // outputs a thread (one row)
  static constexpr int LEAD = wide_lead(KF);      // staged float of input column 0
  static constexpr int OFF = LEAD - KF / 2;       // a strip's first value in its first chunk
  static constexpr int NV = CS + KF - 1;          // input values a strip reads a row
  static constexpr int NCH = wide_chunks(KF);     // 16-byte shared loads a row
  static constexpr int KFP = wide_filter_stride(KF);  // floats a staged filter row
  static_assert(OFF >= 0 && OFF < 4 && CS % 4 == 0, "chunk-aligned strips");
  static constexpr int kMinBlocks = 2;            // two blocks of 256 threads: <= 128 registers

  static LC_DEVICE void run(unsigned char* smem, const ConnArgs& a, const ConnWidePlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index(), nthreads = block_threads();
    const int32_t IH = int32_t(t.IH), IW = int32_t(t.IW), BR = int32_t(t.BR);
    const int32_t P = int32_t(t.P), CSN = int32_t(t.col_strips);
    const int64_t planes = p.N * p.C;
    const int64_t b = block_index();
    const int32_t band_i = int32_t(b % t.bands);
    const int64_t plane0 = b / t.bands * t.P;
    const int32_t oh_band = band_i * BR;  // the band's first output row
    const int32_t have = int32_t(min_of(int64_t(P), planes - plane0));

    // shared memory: the planes' offsets (source, filter, result, bias) and finite flags,
    // then the filters (KF rows of KFP floats each), then the band
    int64_t* bases = reinterpret_cast<int64_t*>(smem);
    float* filt = reinterpret_cast<float*>(smem + wide_table_bytes(t.P));
    float* band = filt + P * KF * KFP;
    for (int32_t i = tid; i < have; i += nthreads) {  // one 64-bit division a plane
      const int64_t plane = plane0 + i, n = plane / p.C, c = plane % p.C;
      int64_t* o = bases + kWideTable * i;
      o[0] = n * a.src_s.n + c * a.src_s.c;
      o[1] = n * a.w_s.n + c / p.cpg * a.w_s.g;
      o[2] = n * a.dst_s.n + c * a.dst_s.c;
      o[3] = c * a.bias_s;
      o[4] = 1;  // the filter is finite (cleared below if not)
    }
    sync_threads();
    const T* w = static_cast<const T*>(a.weight);
    const int32_t wkh = int32_t(a.w_s.kh), wkw = int32_t(a.w_s.kw);
    for (int32_t e = tid; e < have * KF * KF; e += nthreads) {
      const int32_t pl = e / (KF * KF), r = e - pl * (KF * KF), kh = r / KF, kw = r - kh * KF;
      const float v = to_float(w[bases[kWideTable * pl + 1] + kh * wkh + kw * wkw]);
      const int32_t fh = FLIP ? KF - 1 - kh : kh, fw = FLIP ? KF - 1 - kw : kw;
      filt[(pl * KF + fh) * KFP + fw] = v;
      if (FLIP && !(v * 0.0f == 0.0f)) bases[kWideTable * pl + 4] = 0;  // NaN or Inf
    }
    const T* src = static_cast<const T*>(a.src);
    const int32_t H = int32_t(p.h.in), W = int32_t(p.w.in);
    const int32_t sh = int32_t(a.src_s.h), sw = int32_t(a.src_s.w);
    const int32_t ih0 = oh_band - int32_t(p.h.p);
    {  // a warp a staged row at a time (its plane, row and bounds once), lanes along it
      const int32_t lane = tid & 31, warps = nthreads >> 5;
      int32_t pl = 0, r = tid >> 5;  // the row's plane and row in it, advanced by addition
      while (r >= IH) r -= IH, ++pl;
      for (int32_t row = tid >> 5; row < have * IH; row += warps) {
        const int32_t ih = ih0 + r;
        const bool row_in = ih >= 0 && ih < H;
        const T* xr = src + (row_in ? bases[kWideTable * pl] + ih * sh : 0);
        float* d = band + row * IW;
        for (int32_t x = lane; x < IW; x += 32) {
          const int32_t iw = x - LEAD;
          d[x] = row_in && iw >= 0 && iw < W ? to_float(xr[iw * sw]) : 0.0f;
        }
        r += warps;
        while (r >= IH) r -= IH, ++pl;
      }
    }
    sync_threads();

    // this thread's strip: column strips fastest, then rows, then planes
    const int32_t s = tid / CSN, pl = s / BR, cs = tid - s * CSN, rb = s - pl * BR;
    const int32_t oh = oh_band + rb, ow0 = cs * CS;
    const int32_t Ho = int32_t(p.h.out), Wo = int32_t(p.w.out);
    if (pl >= have || oh >= Ho) return;
    const int64_t* o = bases + kWideTable * pl;
    A acc[CS];
    const A b0 = a.bias ? load_acc(static_cast<const T*>(a.bias) + o[3]) : A(0);
LC_UNROLL
    for (int j = 0; j < CS; ++j) acc[j] = b0;
    const float* rows = band + (pl * IH + rb) * IW + ow0;
    const float* frows = filt + pl * KF * KFP;
    if (!FLIP || o[4]) {
      accumulate<false>(acc, rows, frows, IW, 0, KF, ~0ull);
    } else {  // a non-finite flipped filter: only the taps inside g
      const int32_t ih_first = oh - int32_t(p.h.p), iw_first = ow0 - int32_t(p.w.p);
      uint64_t cols = 0;
LC_UNROLL
      for (int m = 0; m < NV; ++m)
        cols |= uint64_t(iw_first + m >= 0 && iw_first + m < W) << m;
      const int32_t k0 = max_of(0, -ih_first), k1 = min_of(KF, H - ih_first);
      accumulate<true>(acc, rows, frows, IW, k0, k1, cols);
    }
    T* y = static_cast<T*>(a.dst) + o[2] + oh * int32_t(a.dst_s.h);
    const int32_t dw = int32_t(a.dst_s.w);
LC_UNROLL
    for (int j = 0; j < CS; ++j)
      if (ow0 + j < Wo) store_acc(y + (ow0 + j) * dw, acc[j]);
  }

  // acc += the strip's products over kernel rows k0 .. k1 - 1: a row's values and filter
  // row in registers, KF * CS FFMA from them; MASKED (FLIP with a non-finite filter): a
  // product only where its input column is inside (bit j + kw of `cols`), else 0
  template <bool MASKED>
  static LC_DEVICE void accumulate(A (&acc)[CS], const float* rows, const float* frows,
                                   int32_t IW, int k0, int k1, uint64_t cols) {
    const SmemAddr at = smem_addr(rows), ft = smem_addr(frows);
#pragma unroll 1
    for (int kh = k0; kh < k1; ++kh) {
      float v[NCH * 4], f[KFP];
LC_UNROLL
      for (int ch = 0; ch < NCH; ++ch) LC_LOAD_SHARED_F4(v + 4 * ch, at + (kh * IW + 4 * ch) * 4);
LC_UNROLL
      for (int ch = 0; ch < KFP / 4; ++ch) LC_LOAD_SHARED_F4(f + 4 * ch, ft + (kh * KFP + 4 * ch) * 4);
LC_UNROLL
      for (int kw = 0; kw < KF; ++kw) {
LC_UNROLL
        for (int j = 0; j < CS; ++j) {
          if constexpr (MASKED) {
            acc[j] += (cols >> (j + kw)) & 1u ? f[kw] * v[OFF + j + kw] : 0.0f;
          } else {
            acc[j] += f[kw] * v[OFF + j + kw];
          }
        }
      }
    }
  }
};

}  // namespace lc
