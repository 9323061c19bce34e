// The kernels compiled once per instruction set (kernels_default.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp, as ATen compiles its own per CPU capability) and the choice among
// them at run time: ATen's own (at::native::get_cpu_capability(), which the environment
// variable ATEN_CPU_CAPABILITY lowers), so localconn and PyTorch's CPU kernels run the
// same instruction set.
#pragma once

#include "cpu/plan.h"

#define LC_CPU_DECLARE(ISA)                                         \
  namespace lc_cpu::ISA {                                           \
  void conn2d_entry(const Conn& p, bool f64);                       \
  void scatter_entry(const Conn& p, bool f64);                      \
  void corr2d_entry(const Corr& p, bool f64, bool positions);       \
  void conn2d_cl_entry(const ConnCl& p, bool f64);                  \
  bool conn2d_cl16_entry(const ConnCl& p);                          \
  void corr2d_cl_entry(const CorrCl& p, bool f64);                  \
  void attention_forward_entry(const Attn& p);                     \
  void attention_backward_entry(const Attn& p);                    \
  int vector_bytes();                                               \
  }

LC_CPU_DECLARE(DEFAULT)
#if defined(__x86_64__) || defined(_M_X64)
#define LC_CPU_X86 1
LC_CPU_DECLARE(AVX2)
LC_CPU_DECLARE(AVX512)
#endif

namespace lc_cpu {
// attention.h's forward (or backward) for the instruction set chosen (binding.cpp)
void run_attention(const Attn& p, bool backward);
}  // namespace lc_cpu
