// Vectorised row kernels of the trainer's softmax work (cross-entropy over
// the vocabulary is the only place where exp runs n x V times), Highway-
// dispatched like the GEMM, each with a scalar twin the tests compare with.
#pragma once

#include <cstdint>

namespace dsv3::train {

// x[i] = exp(x[i] - shift) for i < n; returns the sum of the new values
// (float lanes, summed in double at the end).
double ExpShiftSum(float* x, int64_t n, float shift);
double ExpShiftSumReference(float* x, int64_t n, float shift);

// max_i x[i] (n > 0).
float RowMax(const float* x, int64_t n);

// x[i] *= s
void ScaleRow(float* x, int64_t n, float s);

}  // namespace dsv3::train
