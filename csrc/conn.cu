// conn2d on the GPU: plan (plan.h), dispatch (dispatch.h), launch (launch.cuh).
#include "dispatch.h"
#include "launch.cuh"
#include "launch.h"

namespace lc {

int conn2d_cuda(const ConnArgs& a, cudaStream_t stream, int32_t* chosen, cudaError_t* error) {
  CudaExec ex{stream};
  const int rc = run_conn(ex, a, chosen);
  *error = ex.error;
  return rc;
}

int64_t conn2d_workspace_bytes(const ConnArgs& a, bool transpose) {
  return conn_workspace_bytes(a, transpose);
}

}  // namespace lc
