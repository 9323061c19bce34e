// The arguments of the three primitives as plain numbers and pointers: what
// the PyTorch binding (binding.cpp) and the CPU emulator (emulate/) fill in
// from the same flat integer list (localconn/cuda_backend.py, kernel_meta),
// and what every kernel reads. No PyTorch types.
#pragma once

#include <cstdint>

namespace lc {

// The dtype codes the Python side passes (localconn/cuda_args.py, DTYPE_CODES).
enum DType : int32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

enum Status : int32_t {
  kOk = 0,
  kBadDType = 1,        // not one of DType
  kTooManyBlocks = 2,   // the grid would exceed 2^31 - 1 blocks
  kNoWorkspace = 3,     // a split corr2d, or conn2d through planes, was given no workspace
  kLaunchFailed = 4,    // the launch or the kernel failed (see the CUDA error)
};

enum Window : int32_t { kSliding = 0, kNeighborhood = 1, kBlock = 2 };

// One spatial axis (docs/design.md section 3): input length, output length,
// kernel, stride, leading padding, dilation.
struct Axis {
  int64_t in, out, k, s, p, d;
};

// An (N, C, H, W) tensor: element strides, 0 along size-1 dims.
struct Image {
  int64_t n, c, h, w;
};

// The 6-D weight (Nw, Cw, Kh, Kw, Hw, Ww): element strides, 0 along every
// broadcast dim, so W[n', g(c), kh, kw, oh', ow'] is at
// n*n_ + (c / cpg)*g + kh*kh_ + kw*kw_ + oh*h + ow*w for every (n, c, oh, ow).
struct Weight {
  int64_t n, g, kh, kw, h, w;
};

// Shapes and windows shared by the three primitives.
struct Problem {
  int32_t dtype;   // DType
  int32_t window;  // Window
  int64_t N, C;    // batch, channels
  int64_t cpg;     // channels per weight group, C / Cw
  Axis h, w;       // rows, columns
};

// conn2d:           y[n, c, o] = bias[c] + sum_k W[.., k, o'] x[n, c, i(o, k)]
//   src = x (N, C, H, W), dst = y (N, C, Ho, Wo)
// conn2d_transpose: dst[n, c, i] = sum_{o, k: i(o, k) = i} W[.., k, o'] src[n, c, o]
//   src = g (N, C, Ho, Wo), dst = x-bar (N, C, H, W)
struct ConnArgs {
  Problem p;
  const void* src;
  Image src_s;
  const void* weight;
  Weight w_s;
  bool pos_h, pos_w;   // the weight is position-specific along rows / columns
  const void* bias;    // nullptr: no bias (conn2d only)
  int64_t bias_s;
  void* dst;
  Image dst_s;
  void* workspace;     // plan.h's plan_planes bytes (channels_last through planes), or nullptr
  int64_t planes_budget;  // plan_planes' workspace at most (bytes; 0: kMaxWorkspace; tests)
  int64_t smem_optin;     // the device's opt-in shared memory a block (bytes; 0: unknown,
                          // plan.h's kMaxSmemOptIn, which every GPU with mma.sync has)
};

// corr2d: out[n', g, k, o'] = sum a[n, c, o] * b[n, c, i(o, k)] over the dims the
// weight shape (Nw, Cw, Kh, Kw, Hw, Ww) broadcasts.
struct CorrArgs {
  Problem p;
  const void* a;  // (N, C, Ho, Wo)
  Image a_s;
  const void* b;  // (N, C, H, W)
  Image b_s;
  void* out;      // contiguous (Nw, Cw, Kh, Kw, Hw, Ww)
  int64_t Nw, Cw, Hw, Ww;
  void* workspace;  // splits x out elements of the accumulator type (plan.h), or nullptr
};

}  // namespace lc
