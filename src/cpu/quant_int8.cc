// Products of GGUF block-type weights with int8-quantized activations: the
// fast path for prefill and batched decode (issue 16). Activations are
// quantized per token and 32 values the way ggml makes Q8_0 blocks
// (d = max|x| / 127, q = round(x / d)), with the sum of q per 16 values.
// Weights are prepared 16 rows at a time into a tile: every block unpacked
// by its kind (quant_unpack-inl.h), its levels made unsigned (+ kBias) and
// interleaved so that 4 consecutive weights of 16 rows fill one 64-byte
// vector; per group and row the tile holds the float scale s and a zero term
// z = offset - kBias * s. Then for token t and group g of a row:
//   y += float(sum_k u_k q_k) * (s * d_t) + z * (float(sum_k q_k) * d_t)
// (integer sums exact). With AVX512-VNNI one VPDPBUSD takes 4 weights of 16
// rows against 4 broadcast activations; the scalar twin computes the same
// integer sums and the same fused float steps (std::fma), so both give the
// same bits. The error against the float32-activation path is the
// activations' rounding: at most d_t / 2 per activation (tests bound it).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/quant_int8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"
#include "cpu/kernels.h"
#include "cpu/quant_unpack-inl.h"

// GCC 12's AVX-512 intrinsics (_mm512_cvtepi32_ps, ...) start from an
// uninitialised temporary on purpose; its -Wmaybe-uninitialized about them is noise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#ifndef DSV3_CPU_QUANT_INT8_ONCE
#define DSV3_CPU_QUANT_INT8_ONCE
namespace dsv3::cpu {
constexpr int kTileRows8 = 16;
// Fewer tokens: the float decode kernel (quant_matmul.cc) streams the blocks
// faster than tiles can be prepared.
constexpr int64_t kInt8MinTokens = 8;
// 16 rows of weights, interleaved: w[(k / 4) * 64 + 4 * r + k % 4] is the
// unsigned level of row r, column k; s and z are [cols / group][16].
struct Int8Tile {
  uint8_t* w = nullptr;
  float* s = nullptr;
  float* z = nullptr;
  int group = 32, rows = 0;
};
// Activations of n tokens: q [n, cols], d [n, cols / 32], sum16 [n, cols / 16].
struct Int8Acts {
  int8_t* q = nullptr;
  float* d = nullptr;
  int32_t* sum16 = nullptr;
  int64_t n = 0, cols = 0;
};
}  // namespace dsv3::cpu
#endif

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rows [0, rows) of `data` (row_bytes apart) into the tile.
template <class K>
void PrepareKind(const uint8_t* data, int64_t row_bytes, int rows, int64_t cols, Int8Tile& tile) {
  const DB d;
  const VB bias = hn::Set(d, static_cast<uint8_t>(K::kBias));
  constexpr int64_t bb = DTypeBlockBytes(K::kType);
  constexpr int kGroups = K::kElems / K::kGroup;
  Levels u;
  alignas(64) uint8_t biased[256];
  tile.group = K::kGroup, tile.rows = rows;
  for (int r = 0; r < kTileRows8; ++r) {
    const bool live = r < rows;  // missing rows of the last tile: zeros
    for (int64_t b = 0; b < cols / K::kElems; ++b) {
      if (live) {
        const int8_t* level = K::Unpack(data + r * row_bytes + b * bb, u);
        for (int i = 0; i < K::kElems; i += 16)
          hn::Store(hn::Add(hn::LoadU(d, reinterpret_cast<const uint8_t*>(level) + i), bias), d, biased + i);
      }
      uint32_t* w = reinterpret_cast<uint32_t*>(tile.w) + b * (K::kElems / 4) * 16 + r;
      for (int k = 0; k < K::kElems / 4; ++k) {
        uint32_t v = 0;
        if (live) std::memcpy(&v, biased + 4 * k, 4);
        w[16 * k] = v;
      }
      for (int g = 0; g < kGroups; ++g) {
        const float s = live ? u.scale[g] : 0.0f, off = live && K::kOffset ? u.offset[g] : 0.0f;
        tile.s[(b * kGroups + g) * 16 + r] = s;
        tile.z[(b * kGroups + g) * 16 + r] = off - static_cast<float>(K::kBias) * s;
      }
    }
  }
}

void PrepareInt8TileImpl(DType t, const uint8_t* data, int64_t row_bytes, int rows, int64_t cols, Int8Tile& tile) {
  switch (t) {
    case DType::kQ4_0: return PrepareKind<KQ4_0>(data, row_bytes, rows, cols, tile);
    case DType::kQ4_1: return PrepareKind<KQ4_1>(data, row_bytes, rows, cols, tile);
    case DType::kQ5_0: return PrepareKind<KQ5_0>(data, row_bytes, rows, cols, tile);
    case DType::kQ5_1: return PrepareKind<KQ5_1>(data, row_bytes, rows, cols, tile);
    case DType::kQ8_0: return PrepareKind<KQ8_0>(data, row_bytes, rows, cols, tile);
    case DType::kQ2_K: return PrepareKind<KQ2_K>(data, row_bytes, rows, cols, tile);
    case DType::kQ3_K: return PrepareKind<KQ3_K>(data, row_bytes, rows, cols, tile);
    case DType::kQ4_K: return PrepareKind<KQ4_K>(data, row_bytes, rows, cols, tile);
    case DType::kQ5_K: return PrepareKind<KQ5_K>(data, row_bytes, rows, cols, tile);
    case DType::kQ6_K: return PrepareKind<KQ6_K>(data, row_bytes, rows, cols, tile);
    case DType::kIQ4_NL: return PrepareKind<KIQ4_NL>(data, row_bytes, rows, cols, tile);
    case DType::kIQ4_XS: return PrepareKind<KIQ4_XS>(data, row_bytes, rows, cols, tile);
    default: return;
  }
}

// ---- Decode (1..7 tokens) of 256-weight blocks, AVX-512 with VNNI ----
// Rows one at a time, straight from the packed blocks (no tile): per block
// the levels + kBias meet each token's int8 activations in 4 VPDPBUSD of 64
// weights; lane j of chunk c covers weights 64c + 4j .. + 3, so its scale is
// lane (64c + 4j) / kGroup of the block's s * d_t vector. The zero terms
// z_g * sum(q) * d_t add up per block in a separate vector. dg and qdg hold
// d_t and float(sum q) * d_t per token and group ([n, cols / kGroup]).
#if HWY_TARGET == HWY_AVX3
#define DSV3_INT8_DECODE 1
// Loads written by narrower stores (the unpackers' 16-byte levels, 8-float
// scales) as loads of the same widths: a wider load cannot take its bytes
// from several pending stores and waits for them to reach L1.
HWY_INLINE __m512i Load4x16(const int8_t* p) {
  const __m512i lo = _mm512_castsi256_si512(_mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)), 1));
  const __m256i hi = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48)), 1);
  return _mm512_inserti64x4(lo, hi, 1);
}
// The target's own features plus VNNI: clang replaces (GCC extends) the
// features HWY_BEFORE_NAMESPACE gives a function that names its own target.
#define DSV3_AVX3_VNNI __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
template <int G>
HWY_INLINE __m512 LoadGroups(const float* p) {  // G = 8: upper lanes zero
  const __m512 lo = _mm512_zextps256_ps512(_mm256_loadu_ps(p));
  return G == 8 ? lo : _mm512_insertf32x8(lo, _mm256_loadu_ps(p + 8), 1);
}

template <class K, int T>
DSV3_AVX3_VNNI void DecodeVnni(const MatRef& w, const Int8Acts& a, const float* dg, const float* qdg, float* y,
                               int64_t y_stride, int64_t r0, int64_t r1) {
  static_assert(K::kElems == 256);
  constexpr int G = K::kElems / K::kGroup;
  constexpr int64_t bb = DTypeBlockBytes(K::kType);
  const int64_t nb = w.cols / 256, gpr = w.cols / K::kGroup;
  const __mmask16 gm = static_cast<__mmask16>((1u << G) - 1);
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(K::kBias));
  __m512i idx[4];
  for (int c = 0; c < 4; ++c) {
    alignas(64) int32_t lanes[16];
    for (int j = 0; j < 16; ++j) lanes[j] = (64 * c + 4 * j) / K::kGroup;
    idx[c] = _mm512_load_si512(lanes);
  }
  Levels u;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * nb * bb;
    __m512 acc[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* level = K::Unpack(row + b * bb, u);
      const __m512 sv = LoadGroups<G>(u.scale);
      __m512 zv = K::kOffset ? LoadGroups<G>(u.offset) : _mm512_setzero_ps();
      zv = _mm512_sub_ps(zv, _mm512_mul_ps(_mm512_set1_ps(static_cast<float>(K::kBias)), sv));
      __m512 sd[T];
      for (int t = 0; t < T; ++t) {
        sd[t] = _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(gm, dg + t * gpr + b * G));
        zacc[t] = _mm512_fmadd_ps(zv, _mm512_maskz_loadu_ps(gm, qdg + t * gpr + b * G), zacc[t]);
      }
      for (int c = 0; c < 4; ++c) {
        const __m512i wv = _mm512_add_epi8(Load4x16(level + 64 * c), bias);
        for (int t = 0; t < T; ++t) {
          const __m512i q = _mm512_loadu_si512(a.q + t * a.cols + b * 256 + 64 * c);
          const __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, q);
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_permutexvar_ps(idx[c], sd[t]), acc[t]);
        }
      }
    }
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], zacc[t]));
  }
}

// Q4_K unpacked in registers: a 64-byte load of qs gives in its low
// nibbles the levels of groups (2g, 2g + 2) and in its high nibbles groups
// (2g + 1, 2g + 3), g = 0 or 2, so the activations are first copied into
// that order (qp, per token [cols]) and each block's 16 factors are
// [d_t of groups 0..7, sum(q) * d_t of groups 0..7] (f16, per token [cols / 16]).
// With P = [d sc_g, dmin m_g] * f16: y += levels . q * P[g] - P[8 + g].
template <int T>
DSV3_AVX3_VNNI void DecodeQ4KVnni(const MatRef& w, const int8_t* qp, const float* f16, float* y, int64_t y_stride,
                                  int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / 256, cols = w.cols;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i idx[4] = {_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
                          _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
                          _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4),
                          _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5)};
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * nb * 144;
    __m512 acc[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * 144;
      uint32_t a[3];
      std::memcpy(a, blk + 4, 12);
      constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
      const __m128i scm = _mm_set_epi32(static_cast<int>(((a[2] >> 4) & k4) | (((a[1] >> 6) & k2) << 4)),
                                        static_cast<int>(a[1] & k6),
                                        static_cast<int>((a[2] & k4) | (((a[0] >> 6) & k2) << 4)),
                                        static_cast<int>(a[0] & k6));
      const __m512 dd = _mm512_insertf32x8(_mm512_set1_ps(Half(blk)), _mm256_set1_ps(Half(blk + 2)), 1);
      const __m512 sm = _mm512_mul_ps(dd, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(scm)));
      const __m512i v0 = _mm512_loadu_si512(blk + 16), v1 = _mm512_loadu_si512(blk + 80);
      const __m512i lv[4] = {_mm512_and_si512(v0, m4), _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4),
                             _mm512_and_si512(v1, m4), _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4)};
      for (int t = 0; t < T; ++t) {
        const __m512 P = _mm512_mul_ps(sm, _mm512_loadu_ps(f16 + t * (cols / 16) + b * 16));
        zacc[t] = _mm512_mask_sub_ps(zacc[t], 0xFF00, zacc[t], P);
        const int8_t* q = qp + t * cols + b * 256;
        for (int c = 0; c < 4; ++c) {
          const __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lv[c], _mm512_loadu_si512(q + 64 * c));
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_permutexvar_ps(idx[c], P), acc[t]);
        }
      }
    }
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t], zacc[t]));
  }
}

// Activations reordered as DecodeQ4KVnni reads them, then the kernel.
bool DecodeQ4K(const MatRef& w, const Int8Acts& a, const float* dg, const float* qdg, float* y, int64_t y_stride,
               int64_t r0, int64_t r1, float* work) {
  const int64_t cols = w.cols, nb = cols / 256;
  int8_t* qp = reinterpret_cast<int8_t*>(work);
  float* f16 = work + (a.n * cols / 4 + 15) / 16 * 16;
  static constexpr int kSrc[8] = {0, 64, 32, 96, 128, 192, 160, 224};  // 32-value pieces, in load order
  for (int64_t t = 0; t < a.n; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      for (int p = 0; p < 8; ++p) std::memcpy(qp + t * cols + b * 256 + 32 * p, a.q + t * cols + b * 256 + kSrc[p], 32);
      for (int g = 0; g < 8; ++g) {
        f16[t * (cols / 16) + b * 16 + g] = dg[t * (cols / 32) + b * 8 + g];
        f16[t * (cols / 16) + b * 16 + 8 + g] = qdg[t * (cols / 32) + b * 8 + g];
      }
    }
  for (int64_t t0 = 0; t0 < a.n; t0 += 4) {
    const int64_t T = std::min<int64_t>(4, a.n - t0);
    const int8_t* q = qp + t0 * cols;
    const float* f = f16 + t0 * (cols / 16);
    float* yt = y + t0 * y_stride;
    switch (T) {
      case 1: DecodeQ4KVnni<1>(w, q, f, yt, y_stride, r0, r1); break;
      case 2: DecodeQ4KVnni<2>(w, q, f, yt, y_stride, r0, r1); break;
      case 3: DecodeQ4KVnni<3>(w, q, f, yt, y_stride, r0, r1); break;
      default: DecodeQ4KVnni<4>(w, q, f, yt, y_stride, r0, r1); break;
    }
  }
  return true;
}

template <class K>
bool DecodeKind(const MatRef& w, const Int8Acts& a, const float* dg, const float* qdg, float* y, int64_t y_stride,
                int64_t r0, int64_t r1) {
  for (int64_t t0 = 0; t0 < a.n; t0 += 4) {
    Int8Acts at = a;
    at.q = a.q + t0 * a.cols, at.n = std::min<int64_t>(4, a.n - t0);
    const int64_t off = t0 * (a.cols / K::kGroup);
    float* yt = y + t0 * y_stride;
    switch (at.n) {
      case 1: DecodeVnni<K, 1>(w, at, dg + off, qdg + off, yt, y_stride, r0, r1); break;
      case 2: DecodeVnni<K, 2>(w, at, dg + off, qdg + off, yt, y_stride, r0, r1); break;
      case 3: DecodeVnni<K, 3>(w, at, dg + off, qdg + off, yt, y_stride, r0, r1); break;
      default: DecodeVnni<K, 4>(w, at, dg + off, qdg + off, yt, y_stride, r0, r1); break;
    }
  }
  return true;
}
#endif

// False where this target or type has no int8 decode kernel.
bool Int8DecodeImpl(const MatRef& w, const Int8Acts& a, const float* dg, const float* qdg, float* y,
                    int64_t y_stride, int64_t r0, int64_t r1, float* work) {
#ifdef DSV3_INT8_DECODE
  switch (w.dtype) {
    case DType::kQ2_K: return DecodeKind<KQ2_K>(w, a, dg, qdg, y, y_stride, r0, r1);
    case DType::kQ3_K: return DecodeKind<KQ3_K>(w, a, dg, qdg, y, y_stride, r0, r1);
    case DType::kQ4_K: return DecodeQ4K(w, a, dg, qdg, y, y_stride, r0, r1, work);
    case DType::kQ5_K: return DecodeKind<KQ5_K>(w, a, dg, qdg, y, y_stride, r0, r1);
    case DType::kQ6_K: return DecodeKind<KQ6_K>(w, a, dg, qdg, y, y_stride, r0, r1);
    case DType::kIQ4_XS: return DecodeKind<KIQ4_XS>(w, a, dg, qdg, y, y_stride, r0, r1);
    default: return false;
  }
#undef DSV3_INT8_DECODE
#else
  return false;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <immintrin.h>

namespace dsv3::cpu {

HWY_EXPORT(PrepareInt8TileImpl);
HWY_EXPORT(Int8DecodeImpl);

namespace {

// ggml's Q8_0 rule per 32 values; sums of q per 16.
void QuantizeActs(const float* x, int64_t x_stride, Int8Acts& a) {
  for (int64_t t = 0; t < a.n; ++t) {
    const float* xt = x + t * x_stride;
    for (int64_t b = 0; b < a.cols / 32; ++b) {
      float amax = 0.0f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xt[32 * b + i]));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      a.d[t * (a.cols / 32) + b] = d;
      int8_t* q = a.q + t * a.cols + 32 * b;
      for (int i = 0; i < 32; ++i) q[i] = static_cast<int8_t>(std::nearbyint(xt[32 * b + i] * id));
      for (int h = 0; h < 2; ++h) {
        int32_t s = 0;
        for (int i = 0; i < 16; ++i) s += q[16 * h + i];
        a.sum16[t * (a.cols / 16) + 2 * b + h] = s;
      }
    }
  }
}

// The float factors of group g for token t: d_t and the sum of q.
inline float ActScale(const Int8Acts& a, int64_t t, int64_t g, int group) {
  return a.d[t * (a.cols / 32) + g * group / 32];
}
inline int32_t ActSum(const Int8Acts& a, int64_t t, int64_t g, int group) {
  const int32_t* s = a.sum16 + t * (a.cols / 16) + g * (group / 16);
  return group == 16 ? s[0] : s[0] + s[1];
}

// Scalar twin: y[t * y_stride + r] for the tile's rows and tokens [0, n).
void TileGemmTwin(const Int8Tile& tile, const Int8Acts& a, float* y, int64_t y_stride) {
  const int64_t groups = a.cols / tile.group;
  for (int64_t t = 0; t < a.n; ++t)
    for (int r = 0; r < tile.rows; ++r) {
      float acc = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t isum = 0;
        for (int k = g * tile.group; k < (g + 1) * tile.group; ++k)
          isum += static_cast<int32_t>(tile.w[(k / 4) * 64 + 4 * r + k % 4]) * a.q[t * a.cols + k];
        const float d = ActScale(a, t, g, tile.group);
        acc = std::fma(static_cast<float>(isum), tile.s[g * 16 + r] * d, acc);
        acc = std::fma(tile.z[g * 16 + r], static_cast<float>(ActSum(a, t, g, tile.group)) * d, acc);
      }
      y[t * y_stride + r] = acc;
    }
}

#define DSV3_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// TB tokens from t0 against the tile: 16 rows in the lanes.
template <int TB>
DSV3_VNNI_TARGET void TileGemmVnniBlock(const Int8Tile& tile, const Int8Acts& a, int64_t t0, float* y,
                                        int64_t y_stride) {
  const int64_t groups = a.cols / tile.group;
  const int steps = tile.group / 4;
  __m512 acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i isum[TB];
    for (int t = 0; t < TB; ++t) isum[t] = _mm512_setzero_si512();
    const int32_t* q0 = reinterpret_cast<const int32_t*>(a.q + t0 * a.cols + g * tile.group);
    for (int s = 0; s < steps; ++s) {
      const __m512i w = _mm512_load_si512(tile.w + (g * steps + s) * 64);
      for (int t = 0; t < TB; ++t)
        isum[t] = _mm512_dpbusd_epi32(isum[t], w, _mm512_set1_epi32(q0[t * (a.cols / 4) + s]));
    }
    const __m512 sv = _mm512_loadu_ps(tile.s + g * 16), zv = _mm512_loadu_ps(tile.z + g * 16);
    for (int t = 0; t < TB; ++t) {
      const float d = ActScale(a, t0 + t, g, tile.group);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(sv, _mm512_set1_ps(d)), acc[t]);
      const float zq = static_cast<float>(ActSum(a, t0 + t, g, tile.group)) * d;
      acc[t] = _mm512_fmadd_ps(zv, _mm512_set1_ps(zq), acc[t]);
    }
  }
  const __mmask16 live = static_cast<__mmask16>((1u << tile.rows) - 1);
  for (int t = 0; t < TB; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * y_stride, live, acc[t]);
}

DSV3_VNNI_TARGET void TileGemmVnni(const Int8Tile& tile, const Int8Acts& a, float* y, int64_t y_stride) {
  int64_t t = 0;
  for (; t + 8 <= a.n; t += 8) TileGemmVnniBlock<8>(tile, a, t, y, y_stride);
  for (; t + 4 <= a.n; t += 4) TileGemmVnniBlock<4>(tile, a, t, y, y_stride);
  for (; t < a.n; ++t) TileGemmVnniBlock<1>(tile, a, t, y, y_stride);
}

int64_t Align16(int64_t floats) { return (floats + 15) / 16 * 16; }

}  // namespace

bool HasAvx512Vnni() {
  static const bool has = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return has;
}

int64_t QuantInt8ScratchFloats(const MatRef& w, int64_t n) {
  // Activations, then the tile (or, for decode, d and sum(q) * d per group).
  return Align16(n * w.cols / 4) + Align16(n * w.cols / 32) + Align16(n * w.cols / 16) + Align16(4 * w.cols) +
         2 * Align16(w.cols) + 64;
}

void QuantInt8MatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                         int64_t r0, int64_t r1, float* scratch, bool use_vnni) {
  if (n <= 0 || r0 >= r1) return;
  float* p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  Int8Acts a;
  a.n = n, a.cols = w.cols;
  a.q = reinterpret_cast<int8_t*>(p), p += Align16(n * w.cols / 4);
  a.d = p, p += Align16(n * w.cols / 32);
  a.sum16 = reinterpret_cast<int32_t*>(p), p += Align16(n * w.cols / 16);
  if (n < kInt8MinTokens) {
    if (!use_vnni || !HasAvx512Vnni() || DTypeBlockElems(w.dtype) != 256)
      return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
    QuantizeActs(x, x_stride, a);
    const int group = w.dtype == DType::kQ4_K || w.dtype == DType::kQ5_K || w.dtype == DType::kIQ4_XS ? 32 : 16;
    float* dg = p;
    float* qdg = p + Align16(n * w.cols / 16);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t g = 0; g < w.cols / group; ++g) {
        const float d = ActScale(a, t, g, group);
        dg[t * (w.cols / group) + g] = d;
        qdg[t * (w.cols / group) + g] = static_cast<float>(ActSum(a, t, g, group)) * d;
      }
    float* work = qdg + Align16(n * w.cols / 16);
    if (HWY_DYNAMIC_DISPATCH(Int8DecodeImpl)(w, a, dg, qdg, y, y_stride, r0, r1, work)) return;
    return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  }
  Int8Tile tile;
  tile.w = reinterpret_cast<uint8_t*>(p), p += Align16(4 * w.cols);
  tile.s = p, p += Align16(w.cols);
  tile.z = p;
  QuantizeActs(x, x_stride, a);
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  const bool vnni = use_vnni && HasAvx512Vnni();
  for (int64_t r = r0; r < r1; r += kTileRows8) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows8, r1 - r));
    HWY_DYNAMIC_DISPATCH(PrepareInt8TileImpl)(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes,
                                              row_bytes, rows, w.cols, tile);
    if (vnni)
      TileGemmVnni(tile, a, y + r, y_stride);
    else
      TileGemmTwin(tile, a, y + r, y_stride);
  }
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
