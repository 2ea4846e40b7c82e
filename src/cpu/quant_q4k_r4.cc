// Decode (1..7 tokens) over Q4_K_R4, Q4_K with four rows interleaved
// (core/q4k_r4.h), against int8 activations (per 32 values: d_t and the sum
// of q, as quant_int8.cc quantizes them). Why the layout: with one row at a
// time, each 64 values cost a VPDPBUSD plus an int->float conversion, a
// scale permute and an FMA, and the block's 6-bit scales are unpacked per
// row, so the kernel ran at about half the read bandwidth. Here one 64-byte
// load holds 16 values of four rows, a VPDPBUSD lane (dword 4p + r) sums
// four values of row r, and the float work per sub-block is one conversion
// and one FMA for all four rows; the scales of the four rows are unpacked
// together. High nibbles are used in place (v & 0xF0 = 16 x level, exact in
// the dword sums), their factor carries the 1/16.
//
// Per row r, block b, sub-block g: y_r += d_r sc_rg sum_k(l_k q_k) d_tg -
// dmin_r m_rg (sum_k q_k) d_tg. The twin does the same operations in the
// same order on the same lanes and gives the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"
#include "core/q4k_r4.h"
#include "cpu/quant_q4k_r4.h"

// GCC 12's AVX-512 headers self-initialise the unused pass-through operand
// of unmasked intrinsics (__Y = __Y), which -Wmaybe-uninitialized reports
// once they are inlined into functions with their own target attribute.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace dsv3::cpu {

namespace {
constexpr int64_t kBlockBytes = kQ4KR4BlockBytes;
// Lane 4g + r of a scale vector: sub-block g (mod 4), row r; odd g are high nibbles.
constexpr float NibbleFactor(int lane) { return (lane / 4) % 2 ? 1.0f / 16.0f : 1.0f; }
}  // namespace

int64_t Q4KR4ActBytes(int64_t n, int64_t cols) { return n * (4 * cols + 2 * (cols / 8) * 4); }

namespace {
// ExpandQ4KR4Acts with AVX-512: the same bytes.
DSV3_VNNI_TARGET void ExpandAvx512(const int8_t* q, const float* dg, const float* qdg, int64_t n, int64_t cols,
                                   int8_t* qx, float* d, float* qd) {
  const __m512i dwords = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i lo = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i hi = _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t s = 0; s < cols / 16; ++s) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + t * cols + 16 * s));
      _mm512_storeu_si512(qx + (t * (cols / 16) + s) * 64, _mm512_permutexvar_epi32(dwords, _mm512_castsi128_si512(v)));
    }
    for (int64_t b = 0; b < cols / 256; ++b) {
      const __m512 dv = _mm512_castps256_ps512(_mm256_loadu_ps(dg + t * (cols / 32) + 8 * b));
      const __m512 qv = _mm512_castps256_ps512(_mm256_loadu_ps(qdg + t * (cols / 32) + 8 * b));
      float* dt = d + t * (cols / 8) + 32 * b;
      float* qt = qd + t * (cols / 8) + 32 * b;
      _mm512_storeu_ps(dt, _mm512_permutexvar_ps(lo, dv));
      _mm512_storeu_ps(dt + 16, _mm512_permutexvar_ps(hi, dv));
      _mm512_storeu_ps(qt, _mm512_permutexvar_ps(lo, qv));
      _mm512_storeu_ps(qt + 16, _mm512_permutexvar_ps(hi, qv));
    }
  }
}
}  // namespace

void ExpandQ4KR4Acts(const int8_t* q, const float* dg, const float* qdg, int64_t n, int64_t cols, Q4KR4Acts& a,
                     uint8_t* buf, bool vnni) {
  int8_t* qx = reinterpret_cast<int8_t*>(buf);
  float* d = reinterpret_cast<float*>(buf + n * 4 * cols);
  float* qd = d + n * (cols / 8);
  a.n = n, a.cols = cols, a.q = qx, a.d = d, a.qd = qd;
  if (vnni) return ExpandAvx512(q, dg, qdg, n, cols, qx, d, qd);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t s = 0; s < cols / 16; ++s)  // 16 values -> 64 bytes, dword p at dwords 4p..4p+3
      for (int p = 0; p < 4; ++p)
        for (int r = 0; r < 4; ++r)
          std::memcpy(qx + (t * (cols / 16) + s) * 64 + 4 * (4 * p + r), q + t * cols + 16 * s + 4 * p, 4);
    for (int64_t g = 0; g < cols / 32; ++g)
      for (int r = 0; r < 4; ++r) {
        const int64_t at = t * (cols / 8) + (g / 8) * 32 + 4 * (g % 8) + r;
        d[at] = dg[t * (cols / 32) + g];
        qd[at] = qdg[t * (cols / 32) + g];
      }
  }
}

void DecodeQ4KR4Twin(const MatRef& w, const Q4KR4Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / 256, row_bytes = nb * 144;
  for (int64_t rg = r0; rg < r1; rg += 4) {
    const uint8_t* group = static_cast<const uint8_t*>(w.data) + rg * row_bytes;
    for (int64_t t = 0; t < a.n; ++t) {
      float acc[16] = {}, acc2[16] = {}, zacc[16] = {};
      const float* dt = a.d + t * (w.cols / 8);
      const float* qt = a.qd + t * (w.cols / 8);
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = group + b * kBlockBytes;
        uint8_t sc[4][8], m[4][8];
        for (int r = 0; r < 4; ++r)
          for (int g = 0; g < 8; ++g) KScaleMin(g, blk + 16 + 12 * r, &sc[r][g], &m[r][g]);
        float sf[32];
        for (int k = 0; k < 32; ++k) {  // lane k: sub-block k / 4, row k % 4
          const int g = k / 4, r = k % 4;
          const float d = LoadHalf(blk + 2 * r) * NibbleFactor(k % 16);
          sf[k] = static_cast<float>(sc[r][g]) * d * dt[b * 32 + k];
          const float mf = static_cast<float>(m[r][g]) * LoadHalf(blk + 8 + 2 * r);
          zacc[k % 16] = std::fma(mf, qt[b * 32 + k], zacc[k % 16]);
        }
        for (int c = 0; c < 4; ++c) {
          int32_t il[16] = {}, ih[16] = {};
          for (int h = 0; h < 2; ++h) {
            const uint8_t* v = blk + 64 + 128 * c + 64 * h;
            const int8_t* ql = a.q + (t * (w.cols / 16) + b * 16 + 4 * c + h) * 64;
            const int8_t* qh = a.q + (t * (w.cols / 16) + b * 16 + 4 * c + 2 + h) * 64;
            for (int i = 0; i < 64; ++i) {
              il[i / 4] += (v[i] & 0x0F) * ql[i];
              ih[i / 4] += (v[i] & 0xF0) * qh[i];
            }
          }
          for (int k = 0; k < 16; ++k) {
            acc[k] = std::fma(static_cast<float>(il[k]), sf[8 * c + k % 4], acc[k]);
            acc2[k] = std::fma(static_cast<float>(ih[k]), sf[8 * c + 4 + k % 4], acc2[k]);
          }
        }
      }
      float tot[16];
      for (int k = 0; k < 16; ++k) tot[k] = (acc[k] + acc2[k]) - zacc[k];
      for (int r = 0; r < 4; ++r) y[t * y_stride + (rg - r0) + r] = (tot[r] + tot[8 + r]) + (tot[4 + r] + tot[12 + r]);
    }
  }
}

namespace {
// The 6-bit fields of the four rows: 128-bit lane r = [sc 0..7, m 0..7] of row r.
DSV3_VBMI_TARGET inline __m512i ScalesR4(const uint8_t* blk) {
  const __m512i spread = _mm512_set_epi32(0x23222120, 0x2f2e2d2c, 0x2b2a2928, 0x27262524,  // row 3 (last dword: any)
                                          0x17161514, 0x23222120, 0x1f1e1d1c, 0x1b1a1918,  // row 2
                                          0x0b0a0908, 0x17161514, 0x13121110, 0x0f0e0d0c,  // row 1
                                          0x00000000, 0x0b0a0908, 0x07060504, 0x03020100);  // row 0
  const __m512i v = _mm512_permutexvar_epi8(spread, _mm512_maskz_loadu_epi8(0xFFFFFFFFFFFFull, blk + 16));
  const __m512i a = _mm512_shuffle_epi32(v, _MM_PERM_CBCA);  // a0 a2 a1 a2
  const __m512i b = _mm512_shuffle_epi32(v, _MM_PERM_BBAA);  // a0 a0 a1 a1
  const __m512i low6 = _mm512_and_si512(a, _mm512_set1_epi32(0x3f3f3f3f));
  const __m512i shift = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
  const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi32(a, shift), _mm512_set1_epi32(0x0f0f0f0f)),
                                     _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(b, 6), _mm512_set1_epi32(0x03030303)), 4));
  return _mm512_mask_blend_epi32(0xAAAA, low6, hi);
}

// The byte indices PickScales uses: lane 4j + r <- byte 16r + base + j.
struct PickIndex {
  __m512i sc0, sc1, m0, m1;
};
DSV3_VBMI_TARGET inline __m512i PickIndexOf(int base) {
  alignas(64) uint8_t idx[64] = {};
  for (int k = 0; k < 16; ++k) idx[4 * k] = static_cast<uint8_t>(16 * (k % 4) + base + k / 4);
  return _mm512_load_si512(idx);
}
// Bytes of s picked into dword lanes, zero-extended, as floats.
DSV3_VBMI_TARGET inline __m512 PickScales(__m512i s, __m512i idx) {
  return _mm512_cvtepi32_ps(_mm512_maskz_permutexvar_epi8(0x1111111111111111ull, idx, s));
}

template <int T>
DSV3_VBMI_TARGET void DecodeGroups(const MatRef& w, const Q4KR4Acts& a, float* y, int64_t y_stride, int64_t r0,
                                   int64_t r1) {
  const int64_t nb = w.cols / 256, row_bytes = nb * 144, segs = w.cols / 16, gs = w.cols / 8;
  const __m512i lo_mask = _mm512_set1_epi8(0x0F), hi_mask = _mm512_set1_epi8(static_cast<char>(0xF0));
  alignas(64) float nf[16];
  for (int k = 0; k < 16; ++k) nf[k] = NibbleFactor(k);
  const __m512 nibble = _mm512_load_ps(nf);
  alignas(64) float sf[T][32];
  const PickIndex pick{PickIndexOf(0), PickIndexOf(4), PickIndexOf(8), PickIndexOf(12)};
  const uint8_t* end = static_cast<const uint8_t*>(w.data) + r1 * row_bytes;
  for (int64_t rg = r0; rg < r1; rg += 4) {
    const uint8_t* group = static_cast<const uint8_t*>(w.data) + rg * row_bytes;
    __m512 acc[T], acc2[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = acc2[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kBlockBytes;
      PrefetchAhead(blk, kBlockBytes, end);  // one core 56 -> 65 tok/s on bench-moe Q4_K with --repack
      const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
      const __m512 d = _mm512_mul_ps(_mm512_broadcast_f32x4(_mm256_castps256_ps128(dm)), nibble);
      const __m512 dmin = _mm512_broadcast_f32x4(_mm256_extractf128_ps(dm, 1));
      const __m512i s = ScalesR4(blk);
      const __m512 sc0 = _mm512_mul_ps(PickScales(s, pick.sc0), d), sc1 = _mm512_mul_ps(PickScales(s, pick.sc1), d);
      const __m512 m0 = _mm512_mul_ps(PickScales(s, pick.m0), dmin), m1 = _mm512_mul_ps(PickScales(s, pick.m1), dmin);
      for (int t = 0; t < T; ++t) {
        const float* dt = a.d + t * gs + b * 32;
        const float* qt = a.qd + t * gs + b * 32;
        _mm512_store_ps(sf[t], _mm512_mul_ps(sc0, _mm512_loadu_ps(dt)));
        _mm512_store_ps(sf[t] + 16, _mm512_mul_ps(sc1, _mm512_loadu_ps(dt + 16)));
        zacc[t] = _mm512_fmadd_ps(m0, _mm512_loadu_ps(qt), zacc[t]);
        zacc[t] = _mm512_fmadd_ps(m1, _mm512_loadu_ps(qt + 16), zacc[t]);
      }
      for (int c = 0; c < 4; ++c) {
        __m512i il[T], ih[T];
        for (int t = 0; t < T; ++t) il[t] = ih[t] = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
          const __m512i v = _mm512_loadu_si512(blk + 64 + 128 * c + 64 * h);
          const __m512i lo = _mm512_and_si512(v, lo_mask), hi = _mm512_and_si512(v, hi_mask);
          for (int t = 0; t < T; ++t) {
            const int8_t* qs = a.q + (t * segs + b * 16 + 4 * c + h) * 64;
            il[t] = _mm512_dpbusd_epi32(il[t], lo, _mm512_loadu_si512(qs));
            ih[t] = _mm512_dpbusd_epi32(ih[t], hi, _mm512_loadu_si512(qs + 128));
          }
        }
        for (int t = 0; t < T; ++t) {
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(il[t]), _mm512_broadcast_f32x4(_mm_load_ps(sf[t] + 8 * c)), acc[t]);
          acc2[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ih[t]), _mm512_broadcast_f32x4(_mm_load_ps(sf[t] + 8 * c + 4)), acc2[t]);
        }
      }
    }
    for (int t = 0; t < T; ++t) {
      const __m512 tot = _mm512_sub_ps(_mm512_add_ps(acc[t], acc2[t]), zacc[t]);
      const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(tot), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(tot), 1)));  // r, 4 + r
      _mm_storeu_ps(y + t * y_stride + (rg - r0), _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1)));
    }
  }
}
}  // namespace

DSV3_VBMI_TARGET void DecodeQ4KR4Vnni(const MatRef& w, const Q4KR4Acts& a, float* y, int64_t y_stride, int64_t r0,
                                      int64_t r1) {
  for (int64_t t0 = 0; t0 < a.n; t0 += 4) {
    Q4KR4Acts at = a;
    at.q = a.q + t0 * 4 * a.cols, at.d = a.d + t0 * (a.cols / 8), at.qd = a.qd + t0 * (a.cols / 8);
    at.n = std::min<int64_t>(4, a.n - t0);
    float* yt = y + t0 * y_stride;
    switch (at.n) {
      case 1: DecodeGroups<1>(w, at, yt, y_stride, r0, r1); break;
      case 2: DecodeGroups<2>(w, at, yt, y_stride, r0, r1); break;
      case 3: DecodeGroups<3>(w, at, yt, y_stride, r0, r1); break;
      default: DecodeGroups<4>(w, at, yt, y_stride, r0, r1); break;
    }
  }
}

namespace {
// One group's four rows back into Q4_K bytes: a dword transpose per 64
// bytes of qs (lanes 4p + r -> row r's p-th dword).
DSV3_VNNI_TARGET void UnpackGroupAvx512(const uint8_t* group, int64_t cols, uint8_t* out, int64_t row_bytes) {
  const __m512i transpose = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const uint8_t* in = group + b * kBlockBytes;
    for (int r = 0; r < 4; ++r) {
      uint8_t* o = out + r * row_bytes + b * 144;
      std::memcpy(o, in + 2 * r, 2);
      std::memcpy(o + 2, in + 8 + 2 * r, 2);
      std::memcpy(o + 4, in + 16 + 12 * r, 12);
    }
    for (int k = 0; k < 8; ++k) {  // k = 2c + h: qs bytes 16k .. 16k + 15 of each row
      const __m512i t = _mm512_permutexvar_epi32(transpose, _mm512_loadu_si512(in + 64 + 64 * k));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + b * 144 + 16 + 16 * k), _mm512_castsi512_si128(t));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + row_bytes + b * 144 + 16 + 16 * k), _mm512_extracti32x4_epi32(t, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * row_bytes + b * 144 + 16 + 16 * k), _mm512_extracti32x4_epi32(t, 2));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 3 * row_bytes + b * 144 + 16 + 16 * k), _mm512_extracti32x4_epi32(t, 3));
    }
  }
}
}  // namespace

void UnpackQ4KR4Rows(const MatRef& w, int64_t r, int rows, uint8_t* out, bool avx512) {
  const int64_t row_bytes = w.cols / 256 * 144;
  const uint8_t* data = static_cast<const uint8_t*>(w.data);
  int i = 0;
  if (avx512 && r % 4 == 0)
    for (; i + 4 <= rows; i += 4) UnpackGroupAvx512(data + (r + i) * row_bytes, w.cols, out + i * row_bytes, row_bytes);
  for (; i < rows; ++i) UnpackQ4KR4MatrixRow(data, row_bytes, r + i, w.cols, out + i * row_bytes);
}

}  // namespace dsv3::cpu
