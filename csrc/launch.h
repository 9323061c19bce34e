// The host entry points of the CUDA kernels (conn.cu, conn_transpose.cu,
// corr.cu): plain structs, a stream, a status. No PyTorch types; the
// binding (binding.cpp) is the only file that knows PyTorch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "params.h"

namespace lc {

// Each returns a dispatch.h Status (0: launched); *chosen receives the
// plan.h Kernel that ran, *error the CUDA error of a failed launch.
// a.workspace must hold conn2d_workspace_bytes(a, transpose) bytes (conn2d_transpose:
// transpose = true).
int conn2d_cuda(const ConnArgs& a, cudaStream_t stream, int32_t* chosen, cudaError_t* error);
int conn2d_transpose_cuda(const ConnArgs& a, cudaStream_t stream, int32_t* chosen,
                          cudaError_t* error);
// a.workspace must hold corr2d_workspace_bytes(a, sm_count, force_splits) bytes.
int corr2d_cuda(const CorrArgs& a, int64_t sm_count, int64_t force_splits, cudaStream_t stream,
                int32_t* chosen, cudaError_t* error);
int64_t conn2d_workspace_bytes(const ConnArgs& a, bool transpose);
int64_t corr2d_workspace_bytes(const CorrArgs& a, int64_t sm_count, int64_t force_splits);

}  // namespace lc
