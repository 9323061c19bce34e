// corr2d for channels_last inputs whose result is per channel and shared
// across positions (the weight gradient of depth-wise and dynamic depth-wise
// convolution) with a KF x KF sliding window, stride 1, dilation 1:
//
//   out[n', c, kh, kw] = sum_{n, oh, ow} a[n, c, oh, ow] * b[n, c, oh - p + kh, ow - p + kw]
//
// A block (corr_channels.cuh) owns 32 channels, KHC kernel rows (a chunk; the
// other chunks are other blocks, plan.h's corr_rows_chunk) and one split of
// the positions (batch when Nw = 1, rows, groups of R columns), shared by 8
// position groups. A thread keeps the KHC * KF partial sums of its channel in
// registers; per row group it loads R values of a and, per kernel row,
// R + KF - 1 values of b (input reuse along the row). The 8 groups are then
// summed in a fixed order in shared memory (deterministic, no atomics).
#pragma once

#include "params.h"
#include "plan.h"
#include "corr_channels.cuh"
#include "portable.h"
#include "window.h"

namespace lc {

template <class T, int KF, int KHC>
struct CorrRows {
  static constexpr int R = kConnTileR;
  using A = acc_t<T>;
  // 2 blocks per SM (<= 128 registers, launch.cuh): without the bound ptxas
  // aims at 80 for 13 x 13 in 16-bit types on sm_80 and spills; float64 needs more
  static constexpr int kMinBlocks = sizeof(A) == 8 ? 1 : 2;

  static LC_DEVICE void run(unsigned char* smem_raw, const CorrArgs& a,
                            const CorrChannelsPlan& t) {
    const Problem& p = a.p;
    const ChannelBlock b = channel_block(p, t);
    const int kh0 = int(b.chunk) * KHC;  // this block's first kernel row

    A acc[KHC * KF];
    for (int j = 0; j < KHC * KF; ++j) acc[j] = A(0);
    const int64_t groups = ceil_div(p.w.out, R);
    const int64_t items = (a.Nw == 1 ? p.N : 1) * p.h.out * groups;
    const int64_t i_end = (b.split + 1) * items / t.splits;
    const T* A_ = static_cast<const T*>(a.a);
    const T* B_ = static_cast<const T*>(a.b);
    for (int64_t it = b.split * items / t.splits + b.group; it < i_end; it += kCorrRowsGroups) {
      const int64_t owr = (it % groups) * R, oh = (it / groups) % p.h.out;
      const int64_t n = a.Nw == 1 ? it / (groups * p.h.out) : b.n_res;
      const T* ap = A_ + n * a.a_s.n + b.cc * a.a_s.c + oh * a.a_s.h;
      const T* bp = B_ + n * a.b_s.n + b.cc * a.b_s.c;
      A av[R];
      int valid = 0;
      LC_UNROLL
      for (int r = 0; r < R; ++r) {
        const bool in = owr + r < p.w.out;
        av[r] = in ? load_acc(ap + (owr + r) * a.a_s.w) : A(0);
        valid += in ? 1 : 0;
      }
      const int64_t iw0 = owr - p.w.p;
      const uint64_t cols = columns_inside<R + KF - 1>(iw0, p.w.in);
      for (int kc = 0; kc < KHC; ++kc) {
        const int kh = kh0 + kc;
        if (kh >= KF) break;  // the last chunk may be short
        const int64_t ih = oh - p.h.p + kh;
        const bool row_in = ih >= 0 && ih < p.h.in;
        const T* br = bp + ih * a.b_s.h;
        A bv[R + KF - 1];
        LC_UNROLL
        for (int j = 0; j < R + KF - 1; ++j)
          bv[j] = (row_in && column_in(cols, j)) ? load_acc(br + (iw0 + j) * a.b_s.w) : A(0);
        LC_UNROLL
        for (int kw = 0; kw < KF; ++kw)
          LC_UNROLL
          for (int r = 0; r < R; ++r)
            if (r < valid) acc[kc * KF + kw] += av[r] * bv[r + kw];
      }
    }

    // the kernel rows of this chunk (the last one may be short)
    store_group_sums<T>(smem_raw, a, t, b, acc, min_of(KHC, KF - kh0) * KF, kh0 * KF);
  }
};

}  // namespace lc
