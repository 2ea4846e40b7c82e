// The dot-product peaks the reduced-precision GEMMs are measured against
// (issue 18): BF16 pairs into float32 (VDPBF16PS: 16 lanes x 2 products,
// 64 FLOP per instruction) and unsigned x signed int8 quads into int32
// (VPDPBUSD: 16 lanes x 4 products, 128 ops per instruction), each as 12
// independent accumulator chains on every thread, like MeasureFmaPeak. Zero
// where the instruction is missing. x86 intrinsics under target attributes,
// like the kernels that use them (matmul_bf16.cc, quant_int8.cc).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dsv3::cpu {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) double Bf16Loop(int64_t iters, float* sink) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);  // (GCC 12 warns inside _mm512_reduce_add_ps)
  *sink = lanes[0] + lanes[15];
  return static_cast<double>(iters) * 12.0 * 64.0;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) double Int8Loop(int64_t iters, float* sink) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  __m512i s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  *sink = static_cast<float>(lanes[0]) + static_cast<float>(lanes[15]);  // the sums wrap by design: no int addition
  return static_cast<double>(iters) * 12.0 * 128.0;
}
#endif

}  // namespace

double BestPeakOf3(int threads, int64_t iters, double (*loop)(int64_t, float*)) {
  threads = std::max(threads, 1);
  double best = 0.0;
  for (int r = 0; r < 3; ++r) {
    double ops = 0.0;
    const double t0 = Now();
#pragma omp parallel num_threads(threads) reduction(+ : ops)
    {
      float sink = 0.0f;
      ops += loop(iters, &sink);
      if (sink == 12345.0f) ops += 1.0;
    }
    best = std::max(best, ops / (Now() - t0));
  }
  return best;
}

double MeasureBf16DotPeak(int threads) {
#if defined(__x86_64__)
  if (HasAvx512Bf16()) return BestPeakOf3(threads, 10000000, Bf16Loop);
#endif
  return 0.0;
}

double MeasureInt8DotPeak(int threads) {
#if defined(__x86_64__)
  if (HasAvx512Vnni()) return BestPeakOf3(threads, 10000000, Int8Loop);
#endif
  return 0.0;
}

}  // namespace dsv3::cpu
