// The kernels' view of a Weight (cpu::MatRef), for what calls cpu/ directly:
// the op files, and the kernel tests and benchmarks.
#pragma once

#include "cpu/kernels.h"
#include "ops/weight.h"

namespace dsv3::ops {

cpu::MatRef ToMatRef(const Weight& w);

}  // namespace dsv3::ops
