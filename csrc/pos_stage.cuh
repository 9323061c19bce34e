// Staging for the position-specific kernels (conn_pos.cuh, corr_pos.cuh): a block's Q
// (n, g) groups, a run of cc of each group's channels, a tile of IH rows x IW columns
// (IW a multiple of 4) from input row lo_h and column lo_w, as float32 in shared memory,
// zero outside the image. Plane (channel c of the run, group q) is staged at
// (c Q + q) IH IW; its image offset is the table's entry (c0 + c) Q + q, -1 for a
// group past the batch (zeros).
//
// Unit-stride rows (`rows`): four columns of a staged row a thread (one 16-byte shared
// store); any other layout: a thread per staged pixel walking its channels (contiguous
// in channels_last). Quotients of small integers are float reciprocals (pos_div: exact
// below 2^20, which the plans' tile sizes guarantee); offsets inside a plane 32-bit.
#pragma once

#include "params.h"
#include "portable.h"
#include "stage.cuh"

namespace lc {

// a / b for 0 <= a < 2^20 and inv = 1.0f / b (b >= 1): (a + 0.5) / b is at least
// 0.5 / b away from an integer, more than the product's rounding error.
LC_HD int pos_div(int a, float inv) { return int((float(a) + 0.5f) * inv); }

struct PosTile {
  int Q, c0, cc;         // groups, the run's first channel and length
  int IH, IW;            // staged rows and columns
  int lo_h, lo_w, H, W;  // first input row and column, image size
  float inv_ih;          // 1 / IH
  bool rows;             // unit-stride rows (else a pixel's channels a thread)
};

// A block's place: its first (n, g) group (of Q) and its tile's first output row and
// column (blocks run over groups / Q x tiles_h x tiles_w, fewer than 2^31).
struct PosBlock {
  int64_t g0;
  int oh0, ow0;
};

LC_DEVICE PosBlock pos_block(int Q, int64_t tiles_h, int64_t tiles_w, int TH, int TW) {
  const uint32_t b = uint32_t(block_index()), th = uint32_t(tiles_h), tw = uint32_t(tiles_w);
  const uint32_t rest = b / tw;
  return {int64_t(rest / th) * Q, int(rest % th) * TH, int(b - rest * tw) * TW};
}

// The image offset of plane (channel c, group q) of the block whose first (n, g) is g0,
// at (c * Q + q) of `table`, for all cpg channels (groups: N * G, fewer than 2^31).
LC_DEVICE void pos_plane_table(int64_t* table, int64_t g0, int Q, int cpg, int64_t G,
                               int64_t groups, const Image& s) {
  for (int e = thread_index(); e < Q * cpg; e += block_threads()) {
    const int c = e / Q, q = e - c * Q;
    const uint32_t gi = uint32_t(g0 + q), n = gi / uint32_t(G);
    table[e] = g0 + q < groups ? n * s.n + (int64_t(gi - n * uint32_t(G)) * cpg + c) * s.c
                               : int64_t(-1);
  }
}

template <class T>
LC_DEVICE void pos_stage(float* dst, const int64_t* table, const T* src, const Image& s,
                         const PosTile& t) {
  const int tid = thread_index(), nthreads = block_threads();
  const int plane_vals = t.IH * t.IW, sh = int(s.h), sw = int(s.w);
  const int64_t* offs = table + t.c0 * t.Q;
  if (t.rows) {
    const int per_row = t.IW / 4, units = t.cc * t.Q * t.IH * per_row;
    const float inv_row = 1.0f / float(per_row);
    for (int u = tid; u < units; u += nthreads) {
      const int row = pos_div(u, inv_row), c4 = u - row * per_row;
      const int pl = pos_div(row, t.inv_ih), ih = t.lo_h + row - pl * t.IH;
      const int64_t off = offs[pl];
      const bool row_in = off >= 0 && ih >= 0 && ih < t.H;
      const T* at = src + (row_in ? off + ih * sh : 0);
      float v[4];
LC_UNROLL
      for (int j = 0; j < 4; ++j) {
        const int iw = t.lo_w + 4 * c4 + j;
        v[j] = row_in && iw >= 0 && iw < t.W ? to_float(at[iw]) : 0.0f;
      }
      LC_COPY16(dst + row * t.IW + 4 * c4, v);
    }
  } else {
    const int pixels = t.Q * t.IH * t.IW, sc = int(s.c);
    const float inv_iw = 1.0f / float(t.IW);
    for (int u = tid; u < pixels; u += nthreads) {
      const int row = pos_div(u, inv_iw), col = u - row * t.IW;
      const int q = pos_div(row, t.inv_ih), rr = row - q * t.IH;
      const int ih = t.lo_h + rr, iw = t.lo_w + col;
      const int64_t off = offs[q];
      const bool in = off >= 0 && ih >= 0 && ih < t.H && iw >= 0 && iw < t.W;
      const T* at = src + (in ? off + ih * sh + iw * sw : 0);
      float* out = dst + q * plane_vals + rr * t.IW + col;
      for (int c = 0; c < t.cc; ++c)
        out[c * t.Q * plane_vals] = in ? to_float(at[c * sc]) : 0.0f;
    }
  }
}

}  // namespace lc
