// Decode (1..7 tokens) over the 32-value block types Q4_0, Q5_0 and Q8_0
// with int8 activations (per 32 values d_t and the sum of q, as
// quant_int8.cc quantizes them: the same 32 values as a weight block). Why:
// the float32 path unpacked each block into floats and streamed ~10 GB/s per
// core, a third of the Q4_K kernels; Q8_0 files are common, and Q5_0 is
// where llama.cpp's quantizer puts rows that are not whole 256-blocks
// (bench-moe's expert down projections in a Q4_K file).
//
// Two blocks (A, B) per step. The weights become unsigned u = level + bias
// (Q4_0: the nibble, bias 8; Q5_0: the nibble and the fifth bit, bias 16;
// Q8_0: q xor 0x80, bias 128) in the byte order [A 0..15, B 0..15, A 16..31,
// B 16..31] (the nibbles' natural split), the activations are arranged in
// the same order once per call, and one VPDPBUSD sums u * q: dword lanes
// 0-3 and 8-11 hold block A, 4-7 and 12-15 block B. Per block b:
//   y += d_b (d_tb sum(u q) - bias d_tb sum(q)),
// the correction spread as (bias / 8) d_tb sum(q) over the block's 8 lanes
// (exact: a power of two). The twin does the same operations per lane and
// the same final reduction, so it gives the same bits.
#include "cpu/quant_decode32.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"
#include "cpu/quant_int8_tile.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (quant_q4k_r4.cc)
#endif

namespace dsv3::cpu {

namespace {
// Lane l of a pair: block A (0) or B (1).
constexpr int LaneBlock(int l) { return (l / 4) % 2; }
// Byte i of a pair's vectors holds value (i / 32) * 16 + i % 16 of block (i / 16) % 2.
constexpr int PairByte(int block, int value) { return 32 * (value / 16) + 16 * block + value % 16; }

int Bias(DType t) { return t == DType::kQ8_0 ? 128 : t == DType::kQ5_0 ? 16 : 8; }

// Lanes summed as the VNNI kernel does: halves, quarters, pairs, last two.
float ReduceLanes(const float* v) {
  float h[8], q[4];
  for (int k = 0; k < 8; ++k) h[k] = v[k] + v[k + 8];
  for (int k = 0; k < 4; ++k) q[k] = h[k] + h[k + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// u = level + bias of value e of one block.
uint8_t Biased(DType t, const uint8_t* blk, int e) {
  if (t == DType::kQ8_0) return static_cast<uint8_t>(blk[2 + e] ^ 0x80);
  const int qs = t == DType::kQ5_0 ? 6 : 2;
  const int nib = e < 16 ? blk[qs + e] & 0xF : blk[qs + e - 16] >> 4;
  if (t != DType::kQ5_0) return static_cast<uint8_t>(nib);
  uint32_t qh;
  std::memcpy(&qh, blk + 2, 4);
  return static_cast<uint8_t>(nib | (((qh >> e) & 1) << 4));
}
}  // namespace

bool Decode32Supports(DType t) { return t == DType::kQ4_0 || t == DType::kQ5_0 || t == DType::kQ8_0; }

int64_t Decode32ActBytes(int64_t n, int64_t cols) {
  const int64_t pairs = (cols / 32 + 1) / 2;
  return n * pairs * (64 + 2 * 16 * 4);
}

namespace {
// Expand32Acts' whole pairs with AVX-512: the same bytes.
__attribute__((target("avx512f,avx512bw"))) void ExpandPairsAvx512(const int8_t* q, const float* dg,
                                                                   const float* qdg, float z, int64_t n,
                                                                   int64_t cols, int8_t* qx, float* d, float* qd) {
  const int64_t blocks = cols / 32, pairs = (blocks + 1) / 2;
  const __m512i lane_block = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512 zv = _mm512_set1_ps(z);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t p = 0; p < blocks / 2; ++p) {
      const __m512i v = _mm512_loadu_si512(q + t * cols + 64 * p);  // A 0..15, A 16..31, B 0..15, B 16..31
      _mm512_storeu_si512(qx + (t * pairs + p) * 64, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)));
      // Two floats each (unaligned 8-byte loads).
      const __m128i* dp = reinterpret_cast<const __m128i*>(dg + t * blocks + 2 * p);
      const __m128i* qp = reinterpret_cast<const __m128i*>(qdg + t * blocks + 2 * p);
      const __m512 dv = _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(dp)));
      const __m512 qv = _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(qp)));
      _mm512_storeu_ps(d + (t * pairs + p) * 16, _mm512_permutexvar_ps(lane_block, dv));
      _mm512_storeu_ps(qd + (t * pairs + p) * 16, _mm512_mul_ps(zv, _mm512_permutexvar_ps(lane_block, qv)));
    }
}
}  // namespace

void Expand32Acts(DType t, const int8_t* q, const float* dg, const float* qdg, int64_t n, int64_t cols,
                  Decode32Acts& a, uint8_t* buf, bool avx512) {
  const int64_t blocks = cols / 32, pairs = (blocks + 1) / 2;
  const float z = static_cast<float>(Bias(t)) / 8.0f;
  int8_t* qx = reinterpret_cast<int8_t*>(buf);
  float* d = reinterpret_cast<float*>(buf + n * pairs * 64);
  float* qd = d + n * pairs * 16;
  a.q = qx, a.d = d, a.qd = qd, a.n = n, a.cols = cols;
  if (avx512) ExpandPairsAvx512(q, dg, qdg, z, n, cols, qx, d, qd);
  for (int64_t tk = 0; tk < n; ++tk)
    for (int64_t p = avx512 ? blocks / 2 : 0; p < pairs; ++p) {
      int8_t* out = qx + (tk * pairs + p) * 64;
      for (int j = 0; j < 2; ++j)
        for (int e = 0; e < 32; ++e) {
          const int64_t b = 2 * p + j;
          out[PairByte(j, e)] = b < blocks ? q[tk * cols + 32 * b + e] : 0;
        }
      for (int l = 0; l < 16; ++l) {
        const int64_t b = 2 * p + LaneBlock(l);
        d[(tk * pairs + p) * 16 + l] = b < blocks ? dg[tk * blocks + b] : 0.0f;
        qd[(tk * pairs + p) * 16 + l] = b < blocks ? z * qdg[tk * blocks + b] : 0.0f;
      }
    }
}

void Decode32Twin(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t blocks = w.cols / 32, pairs = (blocks + 1) / 2, bb = DTypeBlockBytes(w.dtype);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * blocks * bb;
    for (int64_t t = 0; t < a.n; ++t) {
      float acc[16] = {}, zacc[16] = {};
      for (int64_t p = 0; p < pairs; ++p) {
        float dw[2] = {0.0f, 0.0f};
        uint8_t u[64] = {};
        for (int j = 0; j < 2 && 2 * p + j < blocks; ++j) {
          const uint8_t* blk = row + (2 * p + j) * bb;
          dw[j] = LoadHalf(blk);
          for (int e = 0; e < 32; ++e) u[PairByte(j, e)] = Biased(w.dtype, blk, e);
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
#define DSV3_D32_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,f16c")))

DSV3_D32_TARGET inline float ReduceLanesVnni(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 s = _mm_add_ps(q, _mm_movehl_ps(q, q));  // q0 + q2, q1 + q3
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// u of a pair (B absent: `both` false) and the pair's two d as f16 bits.
template <DType kType>
DSV3_D32_TARGET inline __m512i PairLevels(const uint8_t* blk, bool both, __m512i spread, uint32_t* dd) {
  constexpr int64_t bb = DTypeBlockBytes(kType);
  uint16_t ha, hb = 0;
  std::memcpy(&ha, blk, 2);
  if (both) std::memcpy(&hb, blk + bb, 2);
  *dd = ha | (static_cast<uint32_t>(hb) << 16);
  if constexpr (kType == DType::kQ8_0) {
    const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i qb = both ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + bb + 2)) : _mm256_set1_epi8(-128);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);  // A 0..31, B 0..31
    return _mm512_xor_si512(_mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(-128));
  } else {
    const __m512i shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0x0004000400040004,
                                           0x0004000400040004, 0, 0, 0, 0);  // high nibbles in bytes 32..63
    const __m512i raw = _mm512_maskz_loadu_epi8(both ? (1ull << (2 * bb)) - 1 : (1ull << bb) - 1, blk);
    __m512i u = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(spread, raw), shift), _mm512_set1_epi8(0x0F));
    if constexpr (kType == DType::kQ5_0) {
      uint32_t qa, qb = 0;
      std::memcpy(&qa, blk + 2, 4);
      if (both) std::memcpy(&qb, blk + bb + 2, 4);
      const __mmask64 fifth = _pdep_u64(qa, 0x0000FFFF0000FFFFull) | _pdep_u64(qb, 0xFFFF0000FFFF0000ull);
      u = _mm512_mask_add_epi8(u, fifth, u, _mm512_set1_epi8(0x10));  // u <= 15: adding 16 sets the bit
    }
    return u;
  }
}

template <DType kType, int T>
DSV3_D32_TARGET void DecodeRows(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0,
                                int64_t r1) {
  constexpr int64_t bb = DTypeBlockBytes(kType), qs = kType == DType::kQ5_0 ? 6 : 2;
  const int64_t blocks = w.cols / 32, pairs = (blocks + 1) / 2;
  alignas(64) uint8_t spread_bytes[64];  // nibble types: [qs_A, qs_B, qs_A, qs_B]
  for (int i = 0; i < 64; ++i) spread_bytes[i] = static_cast<uint8_t>(qs + bb * ((i / 16) % 2) + i % 16);
  const __m512i spread = _mm512_load_si512(spread_bytes);
  const __m512i lane_block = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
  const uint8_t* end = static_cast<const uint8_t*>(w.data) + r1 * blocks * bb;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * blocks * bb;
    __m512 acc[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; ++p) {
      PrefetchAhead(row + 2 * p * bb, 2 * bb, end);
      uint32_t dd;
      const __m512i u = PairLevels<kType>(row + 2 * p * bb, 2 * p + 1 < blocks, spread, &dd);
      const __m128 dab = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));
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

template <DType kType>
void DecodeKind(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t pairs = (w.cols / 32 + 1) / 2;
  for (int64_t t0 = 0; t0 < a.n; t0 += 4) {
    Decode32Acts at = a;
    at.q = a.q + t0 * pairs * 64, at.d = a.d + t0 * pairs * 16, at.qd = a.qd + t0 * pairs * 16;
    at.n = std::min<int64_t>(4, a.n - t0);
    float* yt = y + t0 * y_stride;
    switch (at.n) {
      case 1: DecodeRows<kType, 1>(w, at, yt, y_stride, r0, r1); break;
      case 2: DecodeRows<kType, 2>(w, at, yt, y_stride, r0, r1); break;
      case 3: DecodeRows<kType, 3>(w, at, yt, y_stride, r0, r1); break;
      default: DecodeRows<kType, 4>(w, at, yt, y_stride, r0, r1); break;
    }
  }
}
}  // namespace

void Decode32Vnni(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  switch (w.dtype) {
    case DType::kQ4_0: return DecodeKind<DType::kQ4_0>(w, a, y, y_stride, r0, r1);
    case DType::kQ5_0: return DecodeKind<DType::kQ5_0>(w, a, y, y_stride, r0, r1);
    case DType::kQ8_0: return DecodeKind<DType::kQ8_0>(w, a, y, y_stride, r0, r1);
    default: return;  // Decode32Supports() is false
  }
}

}  // namespace dsv3::cpu
