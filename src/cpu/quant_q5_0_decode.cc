// Decode (1..7 tokens) over Q5_0 with int8 activations (per 32 values d_t
// and the sum of q, as quant_int8.cc quantizes them; Q5_0's block is the
// same 32 values). Why: the float32 path unpacked each 22-byte block into
// floats and ran at ~10 GB/s per core, a third of what the Q4_K kernels
// stream; Q5_0 is where llama.cpp's quantizer puts rows that are not whole
// 256-blocks (bench-moe's expert down projections). Two blocks per step:
// one masked 44-byte load, VPERMB places [qs_A, qs_B, qs_A, qs_B], a
// per-half shift and mask give the low nibbles (values 0..15 of A and B)
// then the high ones (16..31), the fifth bits come in as a byte mask (PDEP
// of the two qh words) OR 16, and one VPDPBUSD against the activations in
// the same order sums u * q with u = level + 16.
//
// Per block b: y += d_b (d_tb sum(u q) - 16 d_tb sum(q)): lanes 0-3 and 8-11
// hold block A, 4-7 and 12-15 block B; the correction is spread as 2 d_tb
// sum(q) over each block's 8 lanes. The twin does the same operations per
// lane and the same reduction, so it gives the same bits.
#include "cpu/quant_q5_0_decode.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (quant_q4k_r4.cc)
#endif

namespace dsv3::cpu {

namespace {
constexpr int64_t kBlock = 22;
// Lane l of a pair: block A (0) or B (1).
constexpr int LaneBlock(int l) { return (l / 4) % 2; }
// Byte i of a pair's activation vector: token value index within the pair's 64.
constexpr int ActIndex(int i) { return 32 * ((i / 16) % 2) + 16 * (i / 32) + i % 16; }

// Lanes summed as the VNNI kernel does: halves, quarters, pairs, last two.
float ReduceLanes(const float* v) {
  float h[8], q[4];
  for (int k = 0; k < 8; ++k) h[k] = v[k] + v[k + 8];
  for (int k = 0; k < 4; ++k) q[k] = h[k] + h[k + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}
}  // namespace

int64_t Q5_0ActBytes(int64_t n, int64_t cols) {
  const int64_t pairs = (cols / 32 + 1) / 2;
  return n * pairs * (64 + 2 * 16 * 4);
}

namespace {
// ExpandQ5_0Acts' whole pairs with AVX-512: the same bytes.
__attribute__((target("avx512f,avx512bw"))) void ExpandPairsAvx512(const int8_t* q, const float* dg,
                                                                   const float* qdg, int64_t n, int64_t cols,
                                                                   int8_t* qx, float* d, float* qd) {
  const int64_t blocks = cols / 32, pairs = (blocks + 1) / 2;
  const __m512i lane_block = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512 two = _mm512_set1_ps(2.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t p = 0; p < blocks / 2; ++p) {
      const __m512i v = _mm512_loadu_si512(q + t * cols + 64 * p);  // A 0..15, A 16..31, B 0..15, B 16..31
      _mm512_storeu_si512(qx + (t * pairs + p) * 64, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)));
      const __m512 dv = _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(dg + t * blocks + 2 * p))));
      const __m512 qv = _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(qdg + t * blocks + 2 * p))));
      _mm512_storeu_ps(d + (t * pairs + p) * 16, _mm512_permutexvar_ps(lane_block, dv));
      _mm512_storeu_ps(qd + (t * pairs + p) * 16, _mm512_mul_ps(two, _mm512_permutexvar_ps(lane_block, qv)));
    }
}
}  // namespace

void ExpandQ5_0Acts(const int8_t* q, const float* dg, const float* qdg, int64_t n, int64_t cols, Q5_0Acts& a,
                    uint8_t* buf, bool avx512) {
  const int64_t blocks = cols / 32, pairs = (blocks + 1) / 2;
  int8_t* qx = reinterpret_cast<int8_t*>(buf);
  float* d = reinterpret_cast<float*>(buf + n * pairs * 64);
  float* qd = d + n * pairs * 16;
  a.q = qx, a.d = d, a.qd = qd, a.n = n, a.cols = cols;
  if (avx512) ExpandPairsAvx512(q, dg, qdg, n, cols, qx, d, qd);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t p = avx512 ? blocks / 2 : 0; p < pairs; ++p) {
      int8_t* out = qx + (t * pairs + p) * 64;
      for (int i = 0; i < 64; ++i) {
        const int64_t k = 64 * p + ActIndex(i);
        out[i] = k < cols ? q[t * cols + k] : 0;
      }
      for (int l = 0; l < 16; ++l) {
        const int64_t b = 2 * p + LaneBlock(l);
        d[(t * pairs + p) * 16 + l] = b < blocks ? dg[t * blocks + b] : 0.0f;
        qd[(t * pairs + p) * 16 + l] = b < blocks ? 2.0f * qdg[t * blocks + b] : 0.0f;
      }
    }
}

void DecodeQ5_0Twin(const MatRef& w, const Q5_0Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t blocks = w.cols / 32, pairs = (blocks + 1) / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * blocks * kBlock;
    for (int64_t t = 0; t < a.n; ++t) {
      float acc[16] = {}, zacc[16] = {};
      for (int64_t p = 0; p < pairs; ++p) {
        float dw[2] = {0.0f, 0.0f};
        uint8_t u[64] = {};
        for (int j = 0; j < 2 && 2 * p + j < blocks; ++j) {
          const uint8_t* blk = row + (2 * p + j) * kBlock;
          uint32_t qh;
          std::memcpy(&qh, blk + 2, 4);
          dw[j] = LoadHalf(blk);
          for (int e = 0; e < 32; ++e) {  // value e of block j sits at byte 32 (e / 16) + 16 j + e % 16
            const int nib = e < 16 ? blk[6 + e] & 0xF : blk[6 + e - 16] >> 4;
            u[32 * (e / 16) + 16 * j + e % 16] = static_cast<uint8_t>(nib | (((qh >> e) & 1) << 4));
          }
        }
        const int8_t* qv = a.q + (t * pairs + p) * 64;
        const float* dt = a.d + (t * pairs + p) * 16;
        const float* qt = a.qd + (t * pairs + p) * 16;
        for (int l = 0; l < 16; ++l) {
          int32_t isum = 0;
          for (int i = 4 * l; i < 4 * l + 4; ++i) isum += u[i] * qv[i];
          const float dl = dw[LaneBlock(l)];
          acc[l] = std::fma(static_cast<float>(isum), dl * dt[l], acc[l]);
          zacc[l] = std::fma(dl, qt[l], zacc[l]);
        }
      }
      float tot[16];
      for (int l = 0; l < 16; ++l) tot[l] = acc[l] - zacc[l];
      y[t * y_stride + r] = ReduceLanes(tot);
    }
  }
}

namespace {
#define DSV3_Q5_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,f16c")))

DSV3_Q5_TARGET inline float ReduceLanesVnni(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 s = _mm_add_ps(q, _mm_movehl_ps(q, q));  // q0 + q2, q1 + q3
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

template <int T>
DSV3_Q5_TARGET void DecodeRows(const MatRef& w, const Q5_0Acts& a, float* y, int64_t y_stride, int64_t r0,
                               int64_t r1) {
  const int64_t blocks = w.cols / 32, pairs = (blocks + 1) / 2;
  alignas(64) uint8_t spread_bytes[64];
  for (int i = 0; i < 64; ++i) spread_bytes[i] = static_cast<uint8_t>(6 + kBlock * ((i / 16) % 2) + i % 16);
  const __m512i spread = _mm512_load_si512(spread_bytes);
  const __m512i shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0x0004000400040004,
                                         0x0004000400040004, 0, 0, 0, 0);  // high nibbles in bytes 32..63
  const __m512i m4 = _mm512_set1_epi8(0x0F), bit5 = _mm512_set1_epi8(0x10);
  const __m512i lane_block = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * blocks * kBlock;
    __m512 acc[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; ++p) {
      const uint8_t* blk = row + 2 * p * kBlock;
      const bool both = 2 * p + 1 < blocks;
      uint32_t qa, qb = 0;
      uint16_t ha, hb = 0;
      std::memcpy(&qa, blk + 2, 4), std::memcpy(&ha, blk, 2);
      if (both) std::memcpy(&qb, blk + kBlock + 2, 4), std::memcpy(&hb, blk + kBlock, 2);
      const __m512i raw = _mm512_maskz_loadu_epi8(both ? (1ull << 44) - 1 : (1ull << 22) - 1, blk);
      __m512i u = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(spread, raw), shift), m4);
      const __mmask64 fifth = _pdep_u64(qa, 0x0000FFFF0000FFFFull) | _pdep_u64(qb, 0xFFFF0000FFFF0000ull);
      u = _mm512_mask_add_epi8(u, fifth, u, bit5);  // u <= 15: adding 16 sets the bit
      const __m128 dab = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(ha | (static_cast<uint32_t>(hb) << 16))));
      const __m512 dw = _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(dab));
      for (int t = 0; t < T; ++t) {
        const int64_t at = t * pairs + p;
        const __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(a.q + at * 64));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_loadu_ps(a.d + at * 16)), acc[t]);
        zacc[t] = _mm512_fmadd_ps(dw, _mm512_loadu_ps(a.qd + at * 16), zacc[t]);
      }
    }
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = ReduceLanesVnni(_mm512_sub_ps(acc[t], zacc[t]));
  }
}
}  // namespace

void DecodeQ5_0Vnni(const MatRef& w, const Q5_0Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t pairs = (w.cols / 32 + 1) / 2;
  for (int64_t t0 = 0; t0 < a.n; t0 += 4) {
    Q5_0Acts at = a;
    at.q = a.q + t0 * pairs * 64, at.d = a.d + t0 * pairs * 16, at.qd = a.qd + t0 * pairs * 16;
    at.n = std::min<int64_t>(4, a.n - t0);
    float* yt = y + t0 * y_stride;
    switch (at.n) {
      case 1: DecodeRows<1>(w, at, yt, y_stride, r0, r1); break;
      case 2: DecodeRows<2>(w, at, yt, y_stride, r0, r1); break;
      case 3: DecodeRows<3>(w, at, yt, y_stride, r0, r1); break;
      default: DecodeRows<4>(w, at, yt, y_stride, r0, r1); break;
    }
  }
}

}  // namespace dsv3::cpu
