// Scalar reference implementations of the op API (namespace ref), threaded
// over output rows with the persistent pool. These define the numerics every
// SIMD kernel is checked against; ops/dispatch.cc runs them for what the SIMD
// kernels do not cover. DecodeRow is shared by both.
#include "ops/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ggml_quants.h"
#include "core/q4k_r4.h"
#include "core/parallel.h"
#include "ops/mat_ref.h"

namespace dsv3::ops {

void DecodeRow(const Weight& w, int64_t r, float* out) {
  const int64_t cols = w.cols;
  switch (w.dtype) {
    case DType::kF32: {
      const float* p = static_cast<const float*>(w.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = p[c];
      break;
    }
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = Bf16ToF32(p[c]);
      break;
    }
    case DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = F16ToF32(p[c]);
      break;
    }
    case DType::kF8E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(w.data) + r * cols;
      for (int64_t c0 = 0; c0 < cols; c0 += w.block_cols) {
        const float s = w.Scale(r, c0);
        const int64_t c1 = std::min(cols, c0 + w.block_cols);
        for (int64_t c = c0; c < c1; ++c) out[c] = F8E4M3ToF32(p[c]) * s;
      }
      break;
    }
    default:
      if (w.dtype == DType::kI8T32 || w.dtype == DType::kQ8_0T32) {  // tiles stored at load
        cpu::DequantizeStoredTileRow(ToMatRef(w), r, out);
        break;
      }
      if (w.dtype == DType::kQ4_KR4) {  // --repack's interleaved Q4_K: the row's Q4_K bytes first
        thread_local std::vector<uint8_t> q4k;
        q4k.resize(static_cast<size_t>(w.bytes_per_row()));
        UnpackQ4KR4MatrixRow(static_cast<const uint8_t*>(w.data), w.bytes_per_row(), r, cols, q4k.data());
        DequantizeBlocks(DType::kQ4_K, q4k.data(), cols, out);
        break;
      }
      if (IsBlockType(w.dtype)) {  // GGUF block types: ggml's decoders, bit for bit
        DequantizeBlocks(w.dtype, static_cast<const uint8_t*>(w.data) + r * w.bytes_per_row(), cols, out);
        break;
      }
      for (int64_t c = 0; c < cols; ++c) out[c] = 0.0f;  // rejected at load time
  }
}

namespace {
// A per-thread row buffer, grown (never shrunk) so steady-state calls do not allocate.
float* RowScratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}
}  // namespace

namespace ref {

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void MatMul(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n) {
  ParallelFor(w.rows, 4, [&](int64_t r0, int64_t r1) {
    float* row = RowScratch(w.cols);
    for (int64_t r = r0; r < r1; ++r) {
      DecodeRow(w, r, row);
      for (int64_t t = 0; t < n; ++t) y[t * y_stride + r] = Dot(row, x + t * x_stride, w.cols);
    }
  });
}

void MatMulTransposed(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                      int64_t n) {
  // Split over tokens: each thread owns whole output rows.
  ParallelFor(n, 1, [&](int64_t t0, int64_t t1) {
    float* row = RowScratch(w.cols);
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t c = 0; c < w.cols; ++c) y[t * y_stride + c] = 0.0f;
    for (int64_t r = 0; r < w.rows; ++r) {
      DecodeRow(w, r, row);
      for (int64_t t = t0; t < t1; ++t) Axpy(x[t * x_stride + r], row, y + t * y_stride, w.cols);
    }
  });
}

void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out,
             int64_t out_stride, int64_t n, int64_t d) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * x_stride;
    float* ot = out + t * out_stride;
    float ss = 0.0f;
    for (int64_t i = 0; i < d; ++i) ss += xt[i] * xt[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
    for (int64_t i = 0; i < d; ++i) ot[i] = xt[i] * inv * weight[i];
  }
}

void SiluMul(float* gate, const float* up, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n * d; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim) {
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = a * sin[i] + b * cos[i];
  }
}

void Softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  const float inv = 1.0f / s;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void MatMulBf16Activations(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                           int64_t n) {
  ParallelFor(w.rows, 4, [&](int64_t r0, int64_t r1) {
    float* row = RowScratch(2 * w.cols);
    float* xr = row + w.cols;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t c = 0; c < w.cols; ++c) xr[c] = Bf16ToF32(F32ToBf16(x[t * x_stride + c]));
      for (int64_t r = r0; r < r1; ++r) {
        DecodeRow(w, r, row);
        y[t * y_stride + r] = Dot(row, xr, w.cols);
      }
    }
  });
}

void GateUpSilu(const GateUpJob& j) {
  MatMul(*j.gate, j.x, j.x_stride, j.y, j.y_stride, j.n);
  MatMul(*j.up, j.x, j.x_stride, j.tmp, j.y_stride, j.n);
  for (int64_t t = 0; t < j.n; ++t) SiluMul(j.y + t * j.y_stride, j.tmp + t * j.y_stride, 1, j.gate->rows);
}

float LatentValue(const LatentRowsView& rows, int64_t j, int64_t k, int64_t rc) {
  if (!rows.f8) return rows.f32[j * rows.stride + k];
  return F8E4M3ToF32(rows.f8[j * rows.stride + k]) * rows.f8_scale[2 * j + (k < rc ? 0 : 1)];
}

void MlaAttention(int64_t rc, int64_t dr, float scale, const float* q, int64_t h0, int64_t h1, int64_t pos,
                  const LatentRowsView& rows, float* o) {
  const int64_t lat = rc + dr;
  std::vector<float> scores(pos + 1);
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t j = 0; j <= pos; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < lat; ++k) s += q[h * lat + k] * LatentValue(rows, j, k, rc);
      scores[j] = scale * s;
    }
    Softmax(scores.data(), pos + 1);
    float* out = o + h * rc;
    std::fill(out, out + rc, 0.0f);
    for (int64_t j = 0; j <= pos; ++j)
      for (int64_t k = 0; k < rc; ++k) out[k] += scores[j] * LatentValue(rows, j, k, rc);
  }
}

}  // namespace ref
}  // namespace dsv3::ops
