// The kernels for x86-64 with AVX-512 (F, BW, VL, DQ; 512-bit vectors), chosen at run time.
#include "cpu/prelude.h"

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2")
// GCC's C++ front end does not define the ISA macros under a target pragma; ATen's vector
// headers and sleef.h test them
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif
#ifndef __BMI__
#define __BMI__ 1
#endif
#ifndef __BMI2__
#define __BMI2__ 1
#endif
#ifndef __AVX512F__
#define __AVX512F__ 1
#endif
#ifndef __AVX512BW__
#define __AVX512BW__ 1
#endif
#ifndef __AVX512VL__
#define __AVX512VL__ 1
#endif
#ifndef __AVX512DQ__
#define __AVX512DQ__ 1
#endif
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "cpu/kernels.h"
#include "cpu/kernels_cl.h"
#include "cpu/attention.h"
// AVX512-BF16 for the bfloat16 dot product only (run where the CPU has it)
#pragma GCC push_options
#pragma GCC target("avx512bf16")
#include "cpu/kernels_cl_dot.h"
#pragma GCC pop_options
#include "cpu/entry.h"
#pragma GCC pop_options
#endif
