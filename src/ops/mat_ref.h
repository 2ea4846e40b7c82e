// The kernels' view of a Weight (cpu::MatRef), for the op files that call
// cpu/ directly. Internal to src/ops.
#pragma once

#include "cpu/kernels.h"
#include "ops/weight.h"

namespace dsv3::ops {

cpu::MatRef ToMatRef(const Weight& w);

}  // namespace dsv3::ops
