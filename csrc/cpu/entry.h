// The entry points of one instruction set's kernels (included last by kernels_<isa>.cpp):
// the accumulator type chosen at run time. Declared for every ISA in isa.h.
#pragma once

namespace lc_cpu {
inline namespace CPU_CAPABILITY {

void conn2d_entry(const Conn& p, bool f64) {
  if (p.bf16) conn2d<float, c10::BFloat16>(p);
  else if (f64) conn2d<double>(p);
  else conn2d<float>(p);
}

void scatter_entry(const Conn& p, bool f64) {
  f64 ? conn2d_transpose_scatter<double>(p) : conn2d_transpose_scatter<float>(p);
}

void corr2d_entry(const Corr& p, bool f64, bool positions) {
  if (positions) f64 ? corr2d_positions<double>(p) : corr2d_positions<float>(p);
  else f64 ? corr2d_shared<double>(p) : corr2d_shared<float>(p);
}

void conn2d_cl_entry(const ConnCl& p, bool f64) { f64 ? conn2d_cl<double>(p) : conn2d_cl<float>(p); }

// The channels_last forward on bfloat16 x and y (p.bf16), converted in registers: false
// when this instruction set's row window does not run the problem (the caller converts).
bool conn2d_cl16_entry(const ConnCl& p) {
  const int k = row_window_k<float>(p);
  if (!k) return false;
#if defined(CPU_CAPABILITY_AVX512)
  if (p.wpairs) return conn2d_cl_window_dot(p, k), true;
#endif
  conn2d_cl_window<float, c10::BFloat16>(p, k);
  return true;
}

void corr2d_cl_entry(const CorrCl& p, bool f64) { f64 ? corr2d_cl<double>(p) : corr2d_cl<float>(p); }

void attention_forward_entry(const Attn& p) { attention_forward(p); }
void attention_backward_entry(const Attn& p) { attention_backward(p); }

int vector_bytes() { return int(at::vec::Vectorized<float>::size() * sizeof(float)); }

}  // namespace CPU_CAPABILITY
}  // namespace lc_cpu
