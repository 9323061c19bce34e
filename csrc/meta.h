// The flat integer lists the Python side passes for each primitive
// (localconn/cuda_args.py builds them; keep the two in step), unpacked into
// params.h structs. Shared by the PyTorch binding and the CPU emulator.
#pragma once

#include <cstdint>

#include "params.h"

namespace lc {

constexpr int kConnMetaLen = 34;
constexpr int kCorrMetaLen = 29;

inline Axis axis_from(const int64_t* m) { return Axis{m[0], m[1], m[2], m[3], m[4], m[5]}; }
inline Image image_from(const int64_t* m) { return Image{m[0], m[1], m[2], m[3]}; }

// [dtype, window, N, C, cpg, h axis (in, out, k, s, p, d), w axis (6)]
inline Problem problem_from(const int64_t* m) {
  return Problem{int32_t(m[0]), int32_t(m[1]), m[2], m[3], m[4], axis_from(m + 5),
                 axis_from(m + 11)};
}

// problem (17), src strides (4), weight strides (6), pos_h, pos_w, bias stride,
// dst strides (4)
inline ConnArgs conn_args_from(const int64_t* m, const void* src, const void* weight,
                               const void* bias, void* dst) {
  ConnArgs a{};
  a.p = problem_from(m);
  a.src = src;
  a.src_s = image_from(m + 17);
  a.weight = weight;
  a.w_s = Weight{m[21], m[22], m[23], m[24], m[25], m[26]};
  a.pos_h = m[27] != 0;
  a.pos_w = m[28] != 0;
  a.bias = bias;
  a.bias_s = m[29];
  a.dst = dst;
  a.dst_s = image_from(m + 30);
  return a;
}

// problem (17), a strides (4), b strides (4), Nw, Cw, Hw, Ww
inline CorrArgs corr_args_from(const int64_t* m, const void* a_ptr, const void* b_ptr, void* out,
                               void* workspace) {
  CorrArgs a{};
  a.p = problem_from(m);
  a.a = a_ptr;
  a.a_s = image_from(m + 17);
  a.b = b_ptr;
  a.b_s = image_from(m + 21);
  a.out = out;
  a.Nw = m[25];
  a.Cw = m[26];
  a.Hw = m[27];
  a.Ww = m[28];
  a.workspace = workspace;
  return a;
}

}  // namespace lc
