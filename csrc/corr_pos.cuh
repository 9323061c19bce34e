// corr2d to a position-specific result (the weight gradient of involution and of the
// inhomogeneous dynamic depth-wise conv: Nw = N, Hw = Ho, Ww = Wo) for a KF x KF
// sliding window, stride 1, dilation 1, KF = 3, 5, 7, NCHW-like or channels_last:
//
//   out[n, g, kh, kw, oh, ow] = sum_{c of group g} a[n, c, oh, ow] b[n, c, oh - p + kh, ow - p + kw]
//
// (a: the output gradient, b: the input). Bytes: the result holds KF * KF values a
// position and group and is most of the traffic with few channels a group; each of its
// values is summed in registers over the group's channels and written once, no split.
//
// A block owns Q (n, g) groups x a TH x TW tile of positions (TW = 4 GW). For a run of
// cc channels at a time it stages the tile of a and the input rows the tile reads from
// b (TH + KF - 1 rows, TW + KF - 1 columns rounded up to 16 bytes, zero outside the
// image) as float32 (pos_stage.cuh). A thread owns a strip of 4 positions of one row
// and one kernel row kh: KF x 4 sums; per channel one 16-byte shared load of a, the b
// row it reads (NV = 4 + KF - 1 rounded up to 4 values, 16-byte loads) and 4 KF FFMA.
// The sums are stored once, 4 values a store where the rows allow (V = 4), else one
// by one inside the plane. A tap on the padding reads b = 0, as the reference's zero
// padding (an Inf in a gives NaN there, as there).
#pragma once

#include "params.h"
#include "plan.h"
#include "portable.h"
#include "pos_stage.cuh"
#include "stage.cuh"

namespace lc {

// One channel: a's 4 values and the b row times each other into the KF x 4 sums. Loads
// and products on one line (as conn_pos.cuh's: nvcc files a load under its use's line).
template <int KF, int NV>
LC_DEVICE void pos_corr_products(float (&acc)[KF][4], const float* arow, const float* brow) {
  float av[4], v[NV];
  // clang-format off
  LC_COPY16(av, arow); LC_UNROLL for (int u = 0; u < NV; u += 4) { LC_COPY16(v + u, brow + u); } LC_UNROLL for (int kw = 0; kw < KF; ++kw) { LC_UNROLL for (int j = 0; j < 4; ++j) acc[kw][j] += av[j] * v[j + kw]; }
  // clang-format on
}

template <class T, int KF, int V>
struct CorrPos {
  static constexpr int NV = (4 + KF - 1 + 3) / 4 * 4;
  static constexpr int kMinBlocks = 3;  // at most 80 registers

  static LC_DEVICE void run(unsigned char* smem_raw, const CorrArgs& a, const CorrPosPlan& t) {
    const Problem& p = a.p;
    const int tid = thread_index();
    const int cpg = int(p.cpg), G = int(a.Cw), Ho = int(p.h.out), Wo = int(p.w.out);
    const int64_t groups = p.N * G;

    const int TW = 4 * t.GW;
    const PosBlock blk = pos_block(t.Q, t.tiles_h, t.tiles_w, t.TH, TW);
    const int64_t g0 = blk.g0;
    const int oh0 = blk.oh0, ow0 = blk.ow0;

    int64_t* a_table = reinterpret_cast<int64_t*>(smem_raw);
    int64_t* b_table = reinterpret_cast<int64_t*>(smem_raw + pos_table_bytes(t.Q * cpg));
    float* as = reinterpret_cast<float*>(smem_raw + 2 * pos_table_bytes(t.Q * cpg));
    float* bs = as + t.cc * t.Q * t.TH * TW;
    pos_plane_table(a_table, g0, t.Q, cpg, G, groups, a.a_s);
    pos_plane_table(b_table, g0, t.Q, cpg, G, groups, a.b_s);

    // this thread's group, kernel row and strip
    const int strips = t.TH * t.GW, ks = pos_div(tid, t.inv_strips), strip = tid - ks * strips;
    const int q = ks / KF, kh = ks - q * KF, r = pos_div(strip, t.inv_gw), gw = strip - r * t.GW;
    const int oh = oh0 + r, ow = ow0 + 4 * gw;
    const int64_t gi = g0 + q;
    const bool active = q < t.Q && gi < groups && oh < Ho && ow < Wo;
    const int a_vals = t.Q * t.TH * TW, b_vals = t.Q * t.IH * t.IW;  // a channel's planes
    const float* arow = as + (q * t.TH + r) * TW + 4 * gw;
    const float* brow = bs + (q * t.IH + r + kh) * t.IW + 4 * gw;

    float acc[KF][4];
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw)
LC_UNROLL
      for (int j = 0; j < 4; ++j) acc[kw][j] = 0.0f;
    for (int c0 = 0; c0 < cpg; c0 += t.cc) {
      const int cc = min_of(t.cc, cpg - c0);
      sync_threads();  // the tables; then the previous run's readers
      pos_stage(as, a_table, static_cast<const T*>(a.a), a.a_s,
                PosTile{t.Q, c0, cc, t.TH, TW, oh0, ow0, Ho, Wo, t.inv_th, t.rows_a});
      pos_stage(bs, b_table, static_cast<const T*>(a.b), a.b_s,
                PosTile{t.Q, c0, cc, t.IH, t.IW, oh0 - int(p.h.p), ow0 - int(p.w.p),
                        int(p.h.in), int(p.w.in), t.inv_ih, t.rows_b});
      sync_threads();
      if (active)
        for (int ci = 0; ci < cc; ++ci)
          pos_corr_products<KF, NV>(acc, arow + ci * a_vals, brow + ci * b_vals);
    }
    if (!active) return;

    // out is contiguous (N, G, KF, KF, Ho, Wo)
    const int plane = Ho * Wo, nvalid = min_of(4, Wo - ow);
    T* out = static_cast<T*>(a.out) + gi * (int64_t(KF * KF) * plane) + (kh * KF) * plane +
             (oh * Wo + ow);
LC_UNROLL
    for (int kw = 0; kw < KF; ++kw) {
      T* at = out + kw * plane;
      if constexpr (V == 4) {
        T v[4];
LC_UNROLL
        for (int j = 0; j < 4; ++j) v[j] = from_float<T>(float(acc[kw][j]));
        if constexpr (sizeof(T) == 4) LC_COPY16(at, v);
        else LC_COPY8(at, v);
      } else {
LC_UNROLL
        for (int j = 0; j < 4; ++j)
          if (j < nvalid) store_acc(at + j, acc[kw][j]);
      }
    }
  }
};

}  // namespace lc
