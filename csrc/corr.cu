// corr2d on the GPU: plan (plan.h), dispatch (dispatch.h), launch (launch.cuh).
#include "dispatch.h"
#include "launch.cuh"
#include "launch.h"

namespace lc {

int64_t corr2d_workspace_bytes(const CorrArgs& a, int64_t sm_count, int64_t force_splits) {
  return corr_workspace_bytes(a, sm_count, force_splits);
}

int corr2d_cuda(const CorrArgs& a, int64_t sm_count, int64_t force_splits, cudaStream_t stream,
                int32_t* chosen, cudaError_t* error) {
  CudaExec ex{stream};
  const int rc = run_corr(ex, a, sm_count, force_splits, chosen);
  *error = ex.error;
  return rc;
}

}  // namespace lc
