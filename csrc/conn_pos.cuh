// conn2d (and conn2d_transpose, FLIP) with a position-specific weight (involution;
// inhomogeneous dynamic depth-wise; the weight (Nw, Cw, KF, KF, Ho, Wo) shared by the
// cpg = C / Cw channels of a group) for a KF x KF sliding window, stride 1, dilation 1,
// KF = 3, 5, 7, NCHW-like or channels_last images:
//
//   y[n, c, oh, ow] = bias[c] + sum_{kh, kw} W[n, c / cpg, kh, kw, oh, ow] x[n, c, oh - p + kh, ow - p + kw]
//
// Bytes: the weight holds KF * KF values a position and group, the image one a
// position and channel, so with few channels a group (involution G = 32 on the
// DWNet-T stages: 3 .. 24) the weight is most of the traffic. It is read once,
// straight into registers, and used there for every channel of the thread.
//
// A block owns Q (n, g) groups x a TH x TW tile of outputs (TW = 4 GW). It
// stages the tile's input (TH + KF - 1 rows, TW + KF - 1 columns rounded up to
// 16 bytes, zero outside the image) for every channel of its groups in shared
// memory as float32 (pos_stage.cuh). A thread owns a strip of 4 outputs of one row and a run of at most
// pos_channels(KF, V) channels of one group (S slices of the group's channels). Per
// kernel row it loads the strip's 4 x KF weights into registers (V values a
// load, the plan's alignment), then per channel the input row it reads
// (4 + KF - 1 values in 16-byte shared loads) and does 4 KF multiply-adds into
// float32 sums: per output KF * KF FFMA, KF * KF / (V cpt) weight loads and, 16-bit,
// KF * KF / cpt conversions (cpt: the thread's channels), KF * NV / 16 shared loads
// (NV = 4 + KF - 1 rounded up to 4). A strip cut by the plane's
// right edge is computed whole from clamped weights and stores what is inside:
// no divergence between the warp's strips.
//
// A tap on the padding reads 0 and is multiplied like any other, as in the
// reference (a non-finite weight there gives NaN). Offsets inside a plane are
// 32-bit (plan.h pos_fits).
//
// FLIP: conn2d_transpose with the same weight, x-bar[n, c, ih, iw] = sum_k
// W[n, g, kh, kw, oh, ow] g[n, c, oh, ow] at (oh, ow) = (ih + p - kh, iw + p - kw), taps
// whose (oh, ow) is outside g adding exactly 0 (the reference's missing candidates).
// The same tiles over x-bar's plane, g staged in place of x, the kernel's rows and
// columns walked backwards: a strip's weights of a tap sit at g's columns s + j - kw
// (s = iw + p), loaded one by one from offsets clamped into g's row (kept for the
// KF + 3 columns the strip's taps reach) and zeroed where the column is outside; rows
// outside g are skipped whole. 4 to 8 channels a thread (its offsets take registers).
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "pos_stage.cuh"
#include "stage.cuh"

namespace lc {

// One strip row: the 4 + KF - 1 staged values (16-byte shared loads) times the strip's
// weights of one kernel row. Loads and products on one line: nvcc files the loads
// under the line that uses them, the emulator's trace under the line that loads.
template <int KF, int NV, class A>
LC_DEVICE void pos_row_products(A (&acc)[4], const A (&w)[KF][4], const float* row) {
  float v[NV];
  // clang-format off
LC_UNROLL
  for (int u = 0; u < NV; u += 4) { LC_COPY16(v + u, row + u); } LC_UNROLL for (int kw = 0; kw < KF; ++kw) { LC_UNROLL for (int j = 0; j < 4; ++j) acc[j] += w[kw][j] * A(v[j + kw]); }
  // clang-format on
}

// A strip's 4 weights of one tap, V values a load (the second pair from `off2`, one by
// one from `joff`), as float32; loads and conversions on one line (as above).
template <class T, int V, class A>
LC_DEVICE void pos_tap_weights(A (&w)[4], const T* at, int off2, const int (&joff)[4]) {
  T buf[4];
  // clang-format off
  if constexpr (V * sizeof(T) == 16) { LC_COPY16(buf, at); } else if constexpr (V == 4) { LC_COPY8(buf, at); } else if constexpr (V * sizeof(T) == 8) { LC_COPY8(buf + 0, at + 0); LC_COPY8(buf + 2, at + off2); } else if constexpr (V == 2) { LC_COPY4(buf + 0, at + 0); LC_COPY4(buf + 2, at + off2); } else { LC_UNROLL for (int j = 0; j < 4; ++j) buf[j] = at[joff[j]]; } LC_UNROLL for (int j = 0; j < 4; ++j) w[j] = A(to_float(buf[j]));
  // clang-format on
}

// FLIP: the strip's 4 weights of tap (kh, kw) at output columns s + j - kw (s = the
// strip's first column + p): of the KF + 3 columns s - KF + 1 .. s + 3, `col` holds the
// offsets clamped into the plane and `inside` a bit for those inside it (the others add
// exactly 0, as the reference's missing candidates); loads and conversions on one line.
template <class T, int KF, class A>
LC_DEVICE void pos_flip_weights(A (&w)[4], const T* row, const int (&col)[KF + 3],
                                uint32_t inside, int kw) {
  // clang-format off
  LC_UNROLL for (int j = 0; j < 4; ++j) { const A v = A(to_float(row[col[j - kw + KF - 1]])); w[j] = (inside >> (j - kw + KF - 1)) & 1u ? v : A(0); }
  // clang-format on
}

template <class T, int KF, int V, bool FLIP>
struct ConnPos {
  using A = acc_t<T>;
  static constexpr int NV = (4 + KF - 1 + 3) / 4 * 4;  // staged values a strip row reads
  static constexpr int kMinBlocks = 3;                  // at most 80 registers
  static constexpr int CPT = pos_channels(KF, V, FLIP);  // a thread's channels at most

  static LC_DEVICE void run(unsigned char* smem_raw, const ConnArgs& a, const ConnPosPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index();
    const int cpg = int(p.cpg), G = int(p.C / p.cpg), planes = t.Q * cpg;
    const int64_t groups = p.N * G;

    const PosBlock blk = pos_block(t.Q, t.tiles_h, t.tiles_w, t.TH, 4 * t.GW);
    const int64_t g0 = blk.g0;
    const int oh0 = blk.oh0, ow0 = blk.ow0;  // the tile's first result row and column
    // the staged source's plane (FLIP: g, Ho x Wo) and the result's (FLIP: H x W)
    const int H = int(FLIP ? p.h.out : p.h.in), W = int(FLIP ? p.w.out : p.w.in);
    const int Ho = int(FLIP ? p.h.in : p.h.out), Wo = int(FLIP ? p.w.in : p.w.out);
    const int lo_h = FLIP ? oh0 + int(p.h.p) - (KF - 1) : oh0 - int(p.h.p);
    const int lo_w = FLIP ? ow0 + int(p.w.p) - (KF - 1) : ow0 - int(p.w.p);

    // the tile's input, every channel of the block's groups
    int64_t* plane_off = reinterpret_cast<int64_t*>(smem_raw);
    float* xs = reinterpret_cast<float*>(smem_raw + pos_table_bytes(planes));
    pos_plane_table(plane_off, g0, t.Q, cpg, G, groups, a.src_s);
    sync_threads();
    const int plane_vals = t.IH * t.IW;
    pos_stage(xs, plane_off, static_cast<const T*>(a.src), a.src_s,
              PosTile{t.Q, 0, cpg, t.IH, t.IW, lo_h, lo_w, H, W, t.inv_ih, !t.channels_last});
    sync_threads();

    // this thread's group, channels and strip
    const unsigned strips = t.TH * t.GW, per_group = strips * t.S, u = tid;
    const int q = int(u / per_group), slice = int(u % per_group / strips);
    const int strip = int(u % strips), r = strip / t.GW, gw = strip % t.GW;
    const int oh = oh0 + r, ow = ow0 + 4 * gw;
    const int64_t gi = g0 + q;
    const int c0 = slice * t.cpt, nc = min_of(t.cpt, cpg - c0);
    if (q >= t.Q || gi >= groups || oh >= Ho || ow >= Wo || nc <= 0) return;
    const uint32_t n32 = uint32_t(gi) / uint32_t(G);  // N * G < 2^31 (plan.h)
    const int64_t n = n32, g = uint32_t(gi) - n32 * uint32_t(G);
    const int nvalid = min_of(4, Wo - ow);  // results of the strip inside the plane

    // the sums start at the bias (loads clamped to the thread's channels, never predicated)
    A acc[CPT][4];
    const T* bias = static_cast<const T*>(a.bias) + (g * cpg + c0) * a.bias_s;
LC_UNROLL
    for (int ci = 0; ci < CPT; ++ci) {
      A b0 = A(0);
      if (a.bias) b0 = load_acc(bias + min_of(ci, nc - 1) * a.bias_s);
LC_UNROLL
      for (int j = 0; j < 4; ++j) acc[ci][j] = b0;
    }

    const float* xrow = xs + (c0 * t.Q + q) * plane_vals + r * t.IW + 4 * gw;
    const int ch_vals = t.Q * plane_vals;  // from one channel's plane to the next
    const int wkh = int(a.w_s.kh), wkw = int(a.w_s.kw), wsh = int(a.w_s.h), wsw = int(a.w_s.w);
    if constexpr (FLIP) {
      // x-bar[ih, iw] = sum_k W[k, ih + p - kh, iw + p - kw] g[ih + p - kh, iw + p - kw] over
      // the taps whose output is inside: kernel row kh reads staged row r + KF - 1 - kh,
      // the products run as the forward's with the taps flipped
      const T* wp = static_cast<const T*>(a.weight) + n * a.w_s.n + g * a.w_s.g;
      const int s0 = ow + int(p.w.p) - (KF - 1), gh = int(p.h.out), gw_ = int(p.w.out);
      int col[KF + 3];
      uint32_t inside = 0;
LC_UNROLL
      for (int m = 0; m < KF + 3; ++m) {
        col[m] = min_of(max_of(s0 + m, 0), gw_ - 1) * wsw;
        inside |= uint32_t(s0 + m >= 0 && s0 + m < gw_) << m;
      }
      for (int kf = 0; kf < KF; ++kf) {  // staged row r + kf: kernel row KF - 1 - kf
        const int kh = KF - 1 - kf, ohs = oh + int(p.h.p) - kh;
        if (ohs < 0 || ohs >= gh) continue;  // no output on this row: nothing to add
        A w[KF][4];
        const T* wr = wp + kh * wkh + ohs * wsh;
LC_UNROLL
        for (int kw = 0; kw < KF; ++kw)
          pos_flip_weights<T, KF>(w[KF - 1 - kw], wr + kw * wkw, col, inside, kw);
LC_UNROLL
        for (int ci = 0; ci < CPT; ++ci) {
          if (ci >= nc) break;
          pos_row_products<KF, NV>(acc[ci], w, xrow + ci * ch_vals + kf * t.IW);
        }
      }
    } else {
      const T* wp = static_cast<const T*>(a.weight) + n * a.w_s.n + g * a.w_s.g +
                    (wsh * oh + wsw * ow);
      // A strip cut by the plane's right edge loads its last valid position's weights in
      // place of the ones past the edge (same code for every strip, nothing predicated):
      // those sums are never stored. V = 2 (an even width): its second pair repeats the
      // first; V = 4 (a width of a multiple of 4): never cut.
      const int off2 = nvalid == 4 ? 2 : 0;
      int joff[4];
LC_UNROLL
      for (int j = 0; j < 4; ++j) joff[j] = j == 0 ? 0 : min_of(j, nvalid - 1) * wsw;
      for (int kh = 0; kh < KF; ++kh) {
        A w[KF][4];
        const T* wr = wp + kh * wkh;
LC_UNROLL
        for (int kw = 0; kw < KF; ++kw) {
          pos_tap_weights<T, V>(w[kw], wr + kw * wkw, off2, joff);
        }
LC_UNROLL
        for (int ci = 0; ci < CPT; ++ci) {
          if (ci >= nc) break;
          pos_row_products<KF, NV>(acc[ci], w, xrow + ci * ch_vals + kh * t.IW);
        }
      }
    }

    T* dst = static_cast<T*>(a.dst) + n * a.dst_s.n + (g * cpg + c0) * a.dst_s.c;
    const int dh = int(a.dst_s.h), dw = int(a.dst_s.w);
LC_UNROLL
    for (int ci = 0; ci < CPT; ++ci) {
      if (ci >= nc) break;
      T* at = dst + ci * a.dst_s.c + (oh * dh + ow * dw);
LC_UNROLL
      for (int j = 0; j < 4; ++j)
        if (j < nvalid) store_acc(at + j * dw, acc[ci][j]);
    }
  }
};

}  // namespace lc
