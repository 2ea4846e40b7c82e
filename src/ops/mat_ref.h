// What calls cpu/ directly needs: the kernels' view of a Weight
// (cpu::MatRef; the op files, the kernel tests and benchmarks) and the op
// files' per-thread scratch.
#pragma once

#include "cpu/kernels.h"
#include "ops/weight.h"

namespace dsv3::ops {

cpu::MatRef ToMatRef(const Weight& w);

// n floats (64-byte aligned) of this thread's scratch, only grown: the token
// loop does not allocate. Valid until the thread's next call.
float* ThreadScratch(int64_t n);

}  // namespace dsv3::ops
