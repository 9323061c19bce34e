// The GPU side of dispatch.h's Exec: one __global__ wrapper that runs a
// kernel body with its dynamic shared memory, and the launch on a stream
// with the error checked right after it.
#pragma once

#include <cuda_runtime.h>

#include "plan.h"

namespace lc {

template <class Body, class... Args>
__global__ void __launch_bounds__(kThreads) body_kernel(Args... args) {
  extern __shared__ __align__(16) unsigned char smem[];
  Body::run(smem, args...);
}

struct CudaExec {
  cudaStream_t stream;
  cudaError_t error = cudaSuccess;

  template <class Body, class... Args>
  int launch(const Launch& l, const Args&... args) {
    body_kernel<Body, Args...><<<dim3(unsigned(l.blocks)), dim3(unsigned(l.threads)),
                                 size_t(l.smem), stream>>>(args...);
    error = cudaGetLastError();
    return error == cudaSuccess ? kOk : kLaunchFailed;
  }
};

}  // namespace lc
