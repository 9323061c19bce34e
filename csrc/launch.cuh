// The GPU side of dispatch.h's Exec: one __global__ wrapper that runs a
// kernel body with its dynamic shared memory, and the launch on a stream
// with the error checked right after it.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "plan.h"

namespace lc {

// A body may declare kMinBlocks: the blocks of kThreads threads per SM it
// asks the compiler to fit, which caps its registers per thread at
// 65536 / (kThreads * kMinBlocks). Without it the bound names threads only
// (an explicit 1 makes ptxas spend registers more freely).
template <class Body, class = void>
struct HasMinBlocks : std::false_type {};
template <class Body>
struct HasMinBlocks<Body, std::void_t<decltype(Body::kMinBlocks)>> : std::true_type {};

template <class Body, class... Args>
__global__ void __launch_bounds__(kThreads) body_kernel(Args... args) {
  extern __shared__ __align__(16) unsigned char smem[];
  Body::run(smem, args...);
}

template <class Body, class... Args>
__global__ void __launch_bounds__(kThreads, Body::kMinBlocks) body_kernel_min(Args... args) {
  extern __shared__ __align__(16) unsigned char smem[];
  Body::run(smem, args...);
}

struct CudaExec {
  cudaStream_t stream;
  cudaError_t error = cudaSuccess;

  template <class Body, class... Args>
  int launch(const Launch& l, const Args&... args) {
    const dim3 grid(unsigned(l.blocks)), block(unsigned(l.threads));
    if constexpr (HasMinBlocks<Body>::value) {
      if (!allow_smem(body_kernel_min<Body, Args...>, l.smem)) return kLaunchFailed;
      body_kernel_min<Body, Args...><<<grid, block, size_t(l.smem), stream>>>(args...);
    } else {
      if (!allow_smem(body_kernel<Body, Args...>, l.smem)) return kLaunchFailed;
      body_kernel<Body, Args...><<<grid, block, size_t(l.smem), stream>>>(args...);
    }
    error = cudaGetLastError();
    return error == cudaSuccess ? kOk : kLaunchFailed;
  }

  // Dynamic shared memory past the default 48 KB (plan.h's kMaxSmemOptIn at most) is an
  // opt-in per kernel and device: set it before every such launch (cheap, and right on
  // whichever device is current).
  template <class K>
  bool allow_smem(K kernel, int64_t smem) {
    if (smem <= kMaxSmem) return true;
    error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    return error == cudaSuccess;
  }
};

}  // namespace lc
