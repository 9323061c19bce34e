// The kernels for any CPU (ATen's DEFAULT vectors: plain arrays the compiler vectorises
// for the baseline instruction set).
#include "cpu/prelude.h"

#define CPU_CAPABILITY DEFAULT
#define CPU_CAPABILITY_DEFAULT
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "cpu/kernels.h"
#include "cpu/kernels_cl.h"
#include "cpu/attention.h"
#include "cpu/entry.h"
