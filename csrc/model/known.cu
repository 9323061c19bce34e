// The known-cost kernels of known.cuh as the GPU would run them (the cost
// model compiles this file for sm_90 and reads its SASS; nothing launches it).
#include "../launch.cuh"
#include "known.cuh"

namespace lc {
template __global__ void body_kernel<Copy, KnownArgs>(KnownArgs);
template __global__ void body_kernel<FmaChain, KnownArgs>(KnownArgs);
template __global__ void body_kernel<SharedStride, KnownArgs>(KnownArgs);
template __global__ void body_kernel<PartialUnits, KnownArgs>(KnownArgs);
template __global__ void body_kernel<GlobalStride, KnownArgs>(KnownArgs);
template __global__ void body_kernel<AsyncCopy, KnownArgs>(KnownArgs);
template __global__ void body_kernel<PredicatedCopy, KnownArgs>(KnownArgs);
}  // namespace lc
