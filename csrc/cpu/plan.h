// What the CPU kernels (kernels.h) are given: plain numbers and pointers, made once per
// call by the binding (binding.cpp) from the argument lists of ../meta.h. Only data here,
// no functions: this header is compiled in every ISA's translation unit, and a function
// compiled there under AVX-512 could be picked by the linker for the others.
#pragma once

#include <cstdint>

namespace lc_cpu {

// Elements past the end of every prepared row and of the weight copy: a whole vector (16
// floats with AVX-512) may be loaded where fewer lanes are used.
constexpr int64_t kSlack = 16;

// Along one axis, the input index that output o reads at tap k: idx[k * out + o], -1 where
// it falls on the zero padding (../window.h's input_index).
//
// The columns of a row are read from a padded copy of the input row (`lpad` zeros, the W
// values, zeros up to `Wp`): tap kw is *affine* when it reads row[off[kw] + ow] for every
// ow (a sliding window with stride 1, or any window whose columns move with the output);
// the other taps read a gathered copy, slot gather[kw] (-1 for an affine tap).
struct Columns {
  const int64_t* idx;     // Kw * Wo
  const int64_t* off;     // Kw: offset into the padded row (affine taps)
  const int64_t* gather;  // Kw: gathered slot, or -1
  int64_t n_gather;       // number of gathered slots
  int64_t lpad, Wp;       // padded row: lpad zeros, W values, zeros up to Wp
};

// An (N, C, H, W) tensor in the accumulator type (float or double): its data and element
// strides.
struct Plane4 {
  void* data;
  int64_t n, c, h, w;
};

// The weight in the accumulator type, contiguous (Nw, G, Kh, Kw, Hw, Ww) with stride 0
// along its size-1 dims; pos_w: it varies along the output columns.
struct WeightA {
  const void* data;
  int64_t n, g, kh, kw, h, w;
  bool pos_w;
};

struct Conn {
  int64_t N, C, cpg;          // batch, channels, channels per weight group
  int64_t H, W, Ho, Wo, Kh, Kw;
  const int64_t* rows;        // Kh * Ho input rows (-1: padding)
  Columns cols;
  Plane4 src, dst;            // conn2d: x -> y; the scatter transpose: g -> x-bar
  WeightA w;
  const void* bias;           // C values in the accumulator type, or nullptr
  bool rows_slide;            // input row = output row + kh - p (sliding, stride 1, dilation 1)
  bool bf16 = false;          // conn2d: src and dst in bfloat16, converted as rows are
};

struct Corr {
  int64_t N, C, cpg, H, W, Ho, Wo, Kh, Kw;
  int64_t Nw, G;              // the weight's batch and group counts
  const int64_t* rows;
  Columns cols;
  Plane4 a, b;                // a: (N, C, Ho, Wo), b: (N, C, H, W)
  void* out;                  // contiguous: (Nw, G, Kh, Kw) shared, (Nw, G, Kh, Kw, Ho, Wo)
  void* partial;              // shared: N * C * Kh * Kw scratch in the accumulator type
};

}  // namespace lc_cpu

namespace lc_cpu {

// The channels_last kernels (kernels_cl.h): contiguous (N, H, W, C) tensors in the
// accumulator type, a weight shared across positions (one filter per channel), vectorised
// along the channels.
struct ConnCl {
  int64_t N, C, H, W, Ho, Wo, Kh, Kw;
  const int64_t* rows;  // Kh * Ho input rows (-1: padding)
  const int64_t* cols;  // Kw * Wo input columns (-1: padding)
  const void* x;        // (N, H, W, C)
  void* y;              // (N, Ho, Wo, C)
  const void* w;        // (Nw, Kh, Kw, C) + kSlack: channel c's filter, tap-major
  int64_t w_n;          // Kh * Kw * C when the weight is per sample, else 0
  const void* bias;     // C values, or nullptr
  bool cols_slide;      // input column = output column + kw - pad_w (stride 1, no dilation)
  int64_t pad_w;
  bool rows_slide;      // input row = output row + kh - pad_h (stride 1, no dilation)
  bool bf16 = false;    // x and y in bfloat16 (w and bias in float)
  // bfloat16 with AVX512-BF16: the filter's tap pairs (Nw, Kh, (Kw + 1) / 2, C, 2) as
  // kernels_cl_dot.h reads them, and their per-sample stride (0: shared); else nullptr
  const void* wpairs = nullptr;
  int64_t wpairs_n = 0;
};

// corr2d of a weight shared across positions, per channel: out[n', kh, kw, c] =
// sum over (n of n', oh, ow) of a[n, oh, ow, c] b[n, rows(kh, oh), cols(kw, ow), c].
struct CorrCl {
  int64_t N, C, H, W, Ho, Wo, Kh, Kw, Nw;
  const int64_t* rows;
  const int64_t* cols;
  const void* a;        // (N, Ho, Wo, C)
  const void* b;        // (N, H, W, C)
  void* out;            // (Nw, Kh, Kw, C)
};

}  // namespace lc_cpu

namespace lc_cpu {

// Fused local attention (attention.h) on contiguous (B, H, W, C) float32 images, per head h
// the channels [h * D, (h + 1) * D) (values and outputs: Dv), for every query o and the
// keys j of its window (in units of the query's dilation group):
//   L[o, j] = scale * q[o] . k[j] + rpb[h, jy - oy + Kh - 1, jx - ox + Kw - 1]
//   out[o] = sum_j exp(L[o, j] - lse[o]) v[j],  lse[o] = log sum_j exp(L[o, j])
// window: 0 neighborhood, 1 causal, 2 sliding, 3 block (Swin's shift regions).
struct Attn {
  int64_t B, H, W, heads, D, Dv, Kh, Kw, dh, dw, window, shift_h, shift_w;
  float scale;
  const float* q;       // (B, H, W, heads * D)
  const float* k;       // (B, H, W, heads * D)
  const float* v;       // (B, H, W, heads * Dv)
  const float* rpb;     // (heads, 2 Kh - 1, 2 Kw - 1), or nullptr
  float* out;           // forward: (B, H, W, heads * Dv)
  float* lse;           // forward: written, backward: read; (B, heads, H, W)
  // backward
  const float* o;       // the forward's out
  const float* dout;    // (B, H, W, heads * Dv)
  float* dq;            // (B, H, W, heads * D)
  float* dk;
  float* dv;            // (B, H, W, heads * Dv)
  float* drpb;          // (B * dh * dw, heads, 2 Kh - 1, 2 Kw - 1) partial sums, or nullptr
};

}  // namespace lc_cpu
