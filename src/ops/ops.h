// The op API the model calls. Every op works on float32 activations; weights
// arrive in their stored format (ops/weight.h). Shapes are given in the
// comments as [rows, cols] with rows = tokens. Which kernel runs (scalar
// reference or a SIMD backend from cpu/) is decided here, never in model/.
#pragma once

#include <cstdint>

#include "ops/weight.h"

namespace dsv3::ops {

// y [n, w.rows] = x [n, w.cols] * w^T. Rows of x and y are `x_stride` /
// `y_stride` floats apart.
void MatMul(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n);
inline void MatMul(const Weight& w, const float* x, float* y, int64_t n) {
  MatMul(w, x, w.cols, y, w.rows, n);
}

// y [n, w.cols] = x [n, w.rows] * w  (the transpose product; MLA absorption).
void MatMulTransposed(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                      int64_t n);

// out [w.cols] = row r of w, dequantized.
void DecodeRow(const Weight& w, int64_t r, float* out);

// out [n, d] = x / sqrt(mean(x^2) + eps) * weight, in float32. out may alias x.
void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out,
             int64_t out_stride, int64_t n, int64_t d);

// gate [n, d] = silu(gate) * up.
void SiluMul(float* gate, const float* up, int64_t n, int64_t d);

// Rotates adjacent pairs (x[2i], x[2i+1]) of x [dim] by angle i: cos/sin [dim/2].
void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim);

// In-place softmax over x [n]; returns nothing, sums in float32.
void Softmax(float* x, int64_t n);

float Dot(const float* a, const float* b, int64_t n);
// y += a * x
void Axpy(float a, const float* x, float* y, int64_t n);

}  // namespace dsv3::ops
