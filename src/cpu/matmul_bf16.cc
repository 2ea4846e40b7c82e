// Matrix products with activations rounded to bf16 (a reduced-precision
// option for prefill): BF16 and FP8 weights are exact in bf16, so each
// VDPBF16PS multiplies 32 weight/activation pairs exactly and adds them in
// float32, twice the multiply-adds per instruction of the float32 path.
// The instruction is not in Debian's Highway (1.0.3), so this file uses
// intrinsics behind a run-time CPU check; its tested twin is the Highway
// float32 kernel applied to the same bf16-rounded activations.
//
// FP8 weights are widened to bf16 with the shift trick of matmul.cc (value *
// 2^-120). VDPBF16PS flushes denormal inputs and outputs, so the activations
// carry 2^60 and the per-block float32 sums are multiplied by scale * 2^60:
// products stay normal. e4m3 subnormal weights (|q| < 2^-6, about 1e-4 of
// random weights) read as zero on this path; the stated error bound covers it.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.h"

// GCC 12's _mm512_reduce_add_ps reads an uninitialised temporary on purpose.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace dsv3::cpu {

namespace {

#define DSV3_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

constexpr int64_t kTokenBlock = 64;

// Token tile: acc[i][t] over one block of 32-pair chunks.
template <int R, int T>
DSV3_BF16_TARGET void BlockDot(const uint8_t* const* rows, bool fp8, const uint32_t* xb, int64_t xb_stride, int64_t c0,
                               int64_t c1, __m512* acc) {
  const __m512i mask = _mm512_set1_epi16(static_cast<short>(0x87F0));
  for (int64_t c = c0; c < c1; ++c) {
    __m512bh w[R];
    for (int i = 0; i < R; ++i) {
      if (fp8) {
        const __m512i v = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i] + 32 * c)));
        w[i] = reinterpret_cast<__m512bh>(_mm512_and_si512(_mm512_slli_epi16(v, 4), mask));
      } else {
        w[i] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(rows[i] + 64 * c));
      }
    }
    for (int t = 0; t < T; ++t) {
      const __m512bh x = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xb + t * xb_stride + 16 * c));
      for (int i = 0; i < R; ++i) acc[i * T + t] = _mm512_dpbf16_ps(acc[i * T + t], w[i], x);
    }
  }
}

template <int R, int T>
DSV3_BF16_TARGET void TileBf16(const MatRef& w, int64_t r, const uint32_t* xb, int64_t xb_stride, int64_t chunks,
                               float* out) {
  const bool fp8 = w.dtype == DType::kF8E4M3;
  const int64_t row_bytes = w.cols * (fp8 ? 1 : 2);
  const uint8_t* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = static_cast<const uint8_t*>(w.data) + (r + i) * row_bytes;
  __m512 total[R * T];
  for (int i = 0; i < R * T; ++i) total[i] = _mm512_setzero_ps();
  if (!fp8) {
    BlockDot<R, T>(rows, false, xb, xb_stride, 0, chunks, total);
  } else {
    const int64_t per_block = w.block_cols / 32;
    const float* srow = w.scale_inv + ((w.row_offset + r) / w.block_rows) * w.scale_cols;
    for (int64_t c0 = 0; c0 < chunks; c0 += per_block) {
      __m512 acc[R * T];
      for (int i = 0; i < R * T; ++i) acc[i] = _mm512_setzero_ps();
      BlockDot<R, T>(rows, true, xb, xb_stride, c0, std::min(chunks, c0 + per_block), acc);
      const __m512 s = _mm512_set1_ps(srow[c0 / per_block] * 0x1p60f);
      for (int i = 0; i < R * T; ++i) total[i] = _mm512_fmadd_ps(acc[i], s, total[i]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) out[t * R + i] = _mm512_reduce_add_ps(total[i * T + t]);
}

using TileBf16Ptr = void (*)(const MatRef&, int64_t, const uint32_t*, int64_t, int64_t, float*);

template <int R>
TileBf16Ptr PickBf16(int64_t T) {
  static constexpr TileBf16Ptr k[] = {nullptr,         TileBf16<R, 1>, TileBf16<R, 2>, TileBf16<R, 3>,
                                      TileBf16<R, 4>,  TileBf16<R, 5>, TileBf16<R, 6>, TileBf16<R, 7>,
                                      TileBf16<R, 8>};
  return k[T];
}

float WeightValue(const MatRef& w, int64_t r, int64_t k) {
  if (w.dtype == DType::kBF16) return Bf16ToF32(static_cast<const uint16_t*>(w.data)[r * w.cols + k]);
  const float s = w.scale_inv[((w.row_offset + r) / w.block_rows) * w.scale_cols + k / w.block_cols];
  return F8E4M3ToF32(static_cast<const uint8_t*>(w.data)[r * w.cols + k]) * s;
}

// xb [tn, K/2 pairs] = bf16(x * up) for tokens t0.. (up = 2^60 for FP8).
void RoundActivations(const float* x, int64_t x_stride, int64_t tn, int64_t cols, float up, uint32_t* xb,
                      int64_t xb_stride) {
  for (int64_t t = 0; t < tn; ++t) {
    uint16_t* dst = reinterpret_cast<uint16_t*>(xb + t * xb_stride);
    for (int64_t k = 0; k < cols; ++k) dst[k] = F32ToBf16(x[t * x_stride + k] * up);
  }
}

DSV3_BF16_TARGET void RunVdpbf16ps(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y,
                                   int64_t y_stride, int64_t r0, int64_t r1, float* scratch) {
  const bool fp8 = w.dtype == DType::kF8E4M3;
  const int64_t chunks = w.cols / 32, xb_stride = (w.cols + 1) / 2 + 16;
  uint32_t* xb = reinterpret_cast<uint32_t*>(scratch);
  const int64_t max_t = n < 8 ? n : 8, row_tile = n < 8 ? 1 : 2;
  float out[16];
  for (int64_t t0 = 0; t0 < n; t0 += kTokenBlock) {
    const int64_t tn = std::min(kTokenBlock, n - t0);
    RoundActivations(x + t0 * x_stride, x_stride, tn, w.cols, fp8 ? 0x1p60f : 1.0f, xb, xb_stride);
    for (int64_t tt = 0; tt < tn; tt += max_t) {
      const int64_t T = std::min(max_t, tn - tt);
      for (int64_t r = r0; r < r1;) {
        const bool two = row_tile == 2 && r + 2 <= r1 && (!fp8 || (w.row_offset + r) / w.block_rows ==
                                                                       (w.row_offset + r + 1) / w.block_rows);
        const int R = two ? 2 : 1;
        (two ? PickBf16<2>(T) : PickBf16<1>(T))(w, r, xb + tt * xb_stride, xb_stride, chunks, out);
        for (int i = 0; i < R; ++i)
          for (int64_t t = 0; t < T; ++t) {
            float v = out[t * R + i];
            for (int64_t k = chunks * 32; k < w.cols; ++k)
              v += WeightValue(w, r + i, k) * Bf16ToF32(F32ToBf16(x[(t0 + tt + t) * x_stride + k]));
            y[(t0 + tt + t) * y_stride + r + i] = v;
          }
        r += R;
      }
    }
  }
}

bool FastPathApplies(const MatRef& w) {
  return w.dtype == DType::kBF16 || (w.dtype == DType::kF8E4M3 && w.block_cols % 32 == 0);
}

}  // namespace

bool HasAvx512Bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  return has;
}

bool MatMulBf16Supports(DType dtype) { return dtype == DType::kBF16 || dtype == DType::kF8E4M3; }

int64_t MatMulBf16ScratchFloats(const MatRef& w, int64_t n) {
  const int64_t tb = std::min(n, kTokenBlock);
  return std::max(tb * ((w.cols + 1) / 2 + 16), tb * w.cols) + MatMulScratchFloats(w, n) + 64;
}

void MatMulBf16Rows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                    int64_t r0, int64_t r1, float* scratch, bool use_vdpbf16ps) {
  if (n <= 0 || r0 >= r1) return;
  if (use_vdpbf16ps && HasAvx512Bf16() && FastPathApplies(w))
    return RunVdpbf16ps(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  // Twin: the float32 kernel over the bf16-rounded activations.
  for (int64_t t0 = 0; t0 < n; t0 += kTokenBlock) {
    const int64_t tn = std::min(kTokenBlock, n - t0);
    float* xr = scratch;  // [tn, cols]
    for (int64_t t = 0; t < tn; ++t)
      for (int64_t k = 0; k < w.cols; ++k) xr[t * w.cols + k] = Bf16ToF32(F32ToBf16(x[(t0 + t) * x_stride + k]));
    MatMulRows(w, xr, w.cols, tn, y + t0 * y_stride, y_stride, r0, r1, xr + tn * w.cols);
  }
}

}  // namespace dsv3::cpu
