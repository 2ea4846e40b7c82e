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

// SwiGLU rows: act = silu(gate) * up; and its backward dgate, dup from dact.
void SiluMulRow(const float* gate, const float* up, float* act, int64_t n);
void SiluMulBackwardRow(const float* dact, const float* gate, const float* up, float* dgate, float* dup, int64_t n);

// FP8 emulation rows (see quant.h): out[i] = RoundE4M3(x[i] * inv[i]) * scale[i],
// with inv/scale either per element (`per_element`) or inv[0]/scale[0] for all.
void RoundE4M3Row(const float* x, float* out, int64_t n, const float* inv, const float* scale, bool per_element);
// m[i] = max(m[i], |x[i]|); returns false if any x[i] is inf or NaN.
bool AbsMaxInto(const float* x, float* m, int64_t n);
// max_i |x[i]| (0 for n = 0); returns false in *finite if any x is inf or NaN.
float AbsMax(const float* x, int64_t n, bool* finite);

}  // namespace dsv3::train
