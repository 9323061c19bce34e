// What every kernels_<isa>.cpp includes *before* its target pragma: PyTorch's headers,
// compiled for the baseline instruction set in every translation unit (a header function
// compiled under AVX-512 in one of them could be the copy the linker keeps for all).
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <c10/util/irange.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <tuple>
#include <type_traits>
