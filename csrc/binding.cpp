// The PyTorch binding of the CUDA kernels: the only file of csrc/ that knows
// PyTorch. Registers the ops of namespace localconn_cuda (TORCH_LIBRARY, CUDA
// dispatch key). They write into outputs allocated by the caller
// (localconn/cuda_backend.py) from the flat argument lists of meta.h, check
// that the list matches the tensors (sizes, strides, dtype, device) before
// anything runs, launch on the current stream of the tensors' device and
// check the launch.
#include <Python.h>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "launch.h"
#include "meta.h"

// setup.py passes the compute capabilities built for, e.g. -DLOCALCONN_ARCHS=80_90
#ifndef LOCALCONN_ARCHS
#define LOCALCONN_ARCHS
#endif
#define LC_STRINGIFY2(x) #x
#define LC_STRINGIFY(x) LC_STRINGIFY2(x)

namespace {

using lc::Image;

int32_t dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return lc::kFloat32;
    case at::kHalf: return lc::kFloat16;
    case at::kBFloat16: return lc::kBFloat16;
    case at::kDouble: return lc::kFloat64;
    default: TORCH_CHECK(false, "localconn_cuda: unsupported dtype ", t);
  }
  return -1;
}

// `t` has `sizes` and, along every dim of size > 1, the strides of `s`.
void check_tensor(const at::Tensor& t, const char* name, std::vector<int64_t> sizes,
                  const int64_t* strides, int32_t dtype, const at::Device& device) {
  TORCH_CHECK(t.is_cuda() && t.device() == device, "localconn_cuda: ", name,
              " must be on ", device, ", got ", t.device());
  TORCH_CHECK(dtype_code(t.scalar_type()) == dtype, "localconn_cuda: ", name,
              " has dtype ", t.scalar_type(), ", the argument list says code ", dtype);
  TORCH_CHECK(t.dim() == int64_t(sizes.size()), "localconn_cuda: ", name, " must have ",
              sizes.size(), " dims, got ", t.dim());
  for (int64_t d = 0; d < t.dim(); ++d) {
    TORCH_CHECK(t.size(d) == sizes[size_t(d)], "localconn_cuda: ", name, " size ", t.sizes(),
                " does not match the argument list at dim ", d, " (", sizes[size_t(d)], ")");
    TORCH_CHECK(t.size(d) == 1 || t.stride(d) == strides[d], "localconn_cuda: ", name,
                " strides ", t.strides(), " do not match the argument list at dim ", d);
  }
}

void check_status(int rc, cudaError_t error, const char* op) {
  TORCH_CHECK(rc == 0, "localconn_cuda::", op, " failed (status ", rc, "): ",
              rc == lc::kLaunchFailed ? cudaGetErrorString(error)
              : rc == lc::kTooManyBlocks ? "the grid would exceed 2^31 - 1 blocks"
                                         : "bad arguments");
}

// An attribute of `device` (current under the caller's guard)
int device_attribute(cudaDeviceAttr attr, const at::Device& device, const char* what) {
  int v = 0;
  TORCH_CHECK(cudaDeviceGetAttribute(&v, attr, device.index()) == cudaSuccess,
              "localconn_cuda: cannot query the device's ", what);
  return v;
}

int64_t conn_common(const at::Tensor& src, const at::Tensor& weight,
                    const c10::optional<at::Tensor>& bias, const at::Tensor& dst,
                    at::IntArrayRef meta, bool transpose) {
  TORCH_CHECK(meta.size() == size_t(lc::kConnMetaLen), "localconn_cuda: the argument list must ",
              "have ", lc::kConnMetaLen, " entries, got ", meta.size());
  const int64_t* m = meta.data();
  const lc::ConnArgs probe = lc::conn_args_from(m, nullptr, nullptr, nullptr, nullptr);
  const lc::Problem& p = probe.p;
  const at::Device device = src.device();
  const int64_t sh = transpose ? p.h.out : p.h.in, sw = transpose ? p.w.out : p.w.in;
  const int64_t dh = transpose ? p.h.in : p.h.out, dw = transpose ? p.w.in : p.w.out;
  check_tensor(src, transpose ? "g" : "x", {p.N, p.C, sh, sw}, m + 17, p.dtype, device);
  check_tensor(dst, "out", {p.N, p.C, dh, dw}, m + 30, p.dtype, device);
  TORCH_CHECK(weight.dim() == 6 && weight.size(2) == p.h.k && weight.size(3) == p.w.k &&
                  (weight.size(0) == 1 || weight.size(0) == p.N) &&
                  weight.size(1) * p.cpg == p.C &&
                  (weight.size(4) == 1 || weight.size(4) == p.h.out) &&
                  (weight.size(5) == 1 || weight.size(5) == p.w.out),
              "localconn_cuda: weight size ", weight.sizes(), " does not match the problem");
  check_tensor(weight, "weight", weight.sizes().vec(), m + 21, p.dtype, device);
  const void* bias_ptr = nullptr;
  if (bias.has_value() && bias->defined()) {
    check_tensor(*bias, "bias", {p.C}, m + 29, p.dtype, device);
    bias_ptr = bias->data_ptr();
  }
  const c10::cuda::CUDAGuard guard(device);
  lc::ConnArgs a =
      lc::conn_args_from(m, src.data_ptr(), weight.data_ptr(), bias_ptr, dst.data_ptr());
  a.smem_optin = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, device,
                                  "opt-in shared memory per block");
  const int64_t bytes = lc::conn2d_workspace_bytes(a, transpose);
  at::Tensor workspace;
  if (bytes > 0) {
    workspace = at::empty({bytes}, src.options().dtype(at::kByte));
    a.workspace = workspace.data_ptr();
  }
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  int32_t chosen = -1;
  cudaError_t error = cudaSuccess;
  const int rc = transpose ? lc::conn2d_transpose_cuda(a, stream, &chosen, &error)
                           : lc::conn2d_cuda(a, stream, &chosen, &error);
  check_status(rc, error, transpose ? "conn2d_transpose" : "conn2d");
  return chosen;
}

int64_t conn2d(const at::Tensor& x, const at::Tensor& weight,
               const c10::optional<at::Tensor>& bias, at::Tensor y, at::IntArrayRef meta) {
  return conn_common(x, weight, bias, y, meta, false);
}

int64_t conn2d_transpose(const at::Tensor& g, const at::Tensor& weight, at::Tensor out,
                         at::IntArrayRef meta) {
  return conn_common(g, weight, c10::nullopt, out, meta, true);
}

int64_t corr2d(const at::Tensor& a, const at::Tensor& b, at::Tensor out, at::IntArrayRef meta,
               int64_t force_splits) {
  TORCH_CHECK(meta.size() == size_t(lc::kCorrMetaLen), "localconn_cuda: the argument list must ",
              "have ", lc::kCorrMetaLen, " entries, got ", meta.size());
  const int64_t* m = meta.data();
  lc::CorrArgs args = lc::corr_args_from(m, nullptr, nullptr, nullptr, nullptr);
  const lc::Problem& p = args.p;
  const at::Device device = a.device();
  check_tensor(a, "a", {p.N, p.C, p.h.out, p.w.out}, m + 17, p.dtype, device);
  check_tensor(b, "b", {p.N, p.C, p.h.in, p.w.in}, m + 21, p.dtype, device);
  TORCH_CHECK(out.is_contiguous(), "localconn_cuda: corr2d's out must be contiguous");
  TORCH_CHECK(args.Cw * p.cpg == p.C && (args.Nw == 1 || args.Nw == p.N) &&
                  (args.Hw == 1 || args.Hw == p.h.out) && (args.Ww == 1 || args.Ww == p.w.out),
              "localconn_cuda: corr2d weight shape does not match the problem");
  const std::vector<int64_t> shape{args.Nw, args.Cw, p.h.k, p.w.k, args.Hw, args.Ww};
  check_tensor(out, "out", shape, out.strides().data(), p.dtype, device);
  const c10::cuda::CUDAGuard guard(device);
  const int64_t sms = device_attribute(cudaDevAttrMultiProcessorCount, device,
                                       "multiprocessor count");
  args.a = a.data_ptr();
  args.b = b.data_ptr();
  args.out = out.data_ptr();
  const int64_t bytes = lc::corr2d_workspace_bytes(args, sms, force_splits);
  at::Tensor workspace;
  if (bytes > 0) {
    workspace = at::empty({bytes}, a.options().dtype(at::kByte));
    args.workspace = workspace.data_ptr();
  }
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  int32_t chosen = -1;
  cudaError_t error = cudaSuccess;
  const int rc = lc::corr2d_cuda(args, sms, force_splits, stream, &chosen, &error);
  check_status(rc, error, "corr2d");
  return chosen;
}

std::string build_info() { return std::string("archs=") + LC_STRINGIFY(LOCALCONN_ARCHS); }

}  // namespace

TORCH_LIBRARY(localconn_cuda, m) {
  m.def("conn2d(Tensor x, Tensor weight, Tensor? bias, Tensor(a!) y, int[] meta) -> int");
  m.def("conn2d_transpose(Tensor g, Tensor weight, Tensor(a!) out, int[] meta) -> int");
  m.def("corr2d(Tensor a, Tensor b, Tensor(a!) out, int[] meta, int force_splits) -> int");
  m.def("build_info() -> str", &build_info);
}

TORCH_LIBRARY_IMPL(localconn_cuda, CUDA, m) {
  m.impl("conn2d", &conn2d);
  m.impl("conn2d_transpose", &conn2d_transpose);
  m.impl("corr2d", &corr2d);
}

// `import localconn._C` loads the library (which registers the ops above); the
// module itself is empty: the ops live in torch.ops.localconn_cuda.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C",
                               "localconn's CUDA kernels: the ops of torch.ops.localconn_cuda",
                               -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module);
}
