// Products of GGUF block-type weights with int8-quantized activations: the
// fast path for prefill and batched decode (issue 16). Activations are
// quantized per token and 32 values the way ggml makes Q8_0 blocks
// (d = max|x| / 127, q = round(x / d)), with the sum of q per 16 values.
// From 8 tokens on, weights are prepared 32 rows at a time into a tile: every
// block unpacked by its kind (quant_unpack-inl.h) into signed levels w, then
// interleaved so that 4 consecutive weights of 16 rows fill one 64-byte
// vector; per group and row the tile holds the float scale s, the offset z
// (types with one) and c = -128 * sum(w). VPDPBUSD multiplies unsigned by
// signed bytes, so the activations enter as u = q + 128 and
//   isum = c + sum_k w_k u_k = sum_k w_k q_k   (exact)
//   y += float(isum) * (s * d_t) [+ z * (float(sum_k q_k) * d_t)]
// One VPDPBUSD takes 4 weights of 16 rows against 4 broadcast activations;
// the register block is 32 rows x 6 tokens. The scalar twin computes the same
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
constexpr int kTileRows8 = 32;
// Fewer tokens: the float decode kernel (quant_matmul.cc) streams the blocks
// faster than tiles can be prepared.
constexpr int64_t kInt8MinTokens = 8;
// 32 rows of weights. rm [32, cols]: the signed levels, row-major (staging);
// w: the same interleaved, w[(k / 4) * 128 + 64 * (r / 16) + 4 * (r % 16) + k % 4]
// is row r, column k; s, z and c are [cols / group][32].
struct Int8Tile {
  int8_t* rm = nullptr;
  int8_t* w = nullptr;
  float* s = nullptr;
  float* z = nullptr;
  int32_t* c = nullptr;
  int group = 32, rows = 0;
  bool offset = false;
  // The next tile's packed rows (contiguous): prefetched into L2 while this
  // tile's products run, so preparing it does not wait on memory.
  const uint8_t* next = nullptr;
  int64_t next_bytes = 0;
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

// Rows [0, rows) of `data` (row_bytes apart) into the tile's staging rows,
// scales and offsets; rows past `rows` are zeros.
template <class K>
void PrepareKind(const uint8_t* data, int64_t row_bytes, int rows, int64_t cols, Int8Tile& tile) {
  constexpr int64_t bb = DTypeBlockBytes(K::kType);
  constexpr int kGroups = K::kElems / K::kGroup;
  Levels u;
  tile.group = K::kGroup, tile.rows = rows, tile.offset = K::kOffset;
  for (int r = 0; r < kTileRows8; ++r) {
    const bool live = r < rows;
    int8_t* out = tile.rm + r * cols;
    for (int64_t b = 0; b < cols / K::kElems; ++b) {
      if (live)
        std::memcpy(out + b * K::kElems, K::Unpack(data + r * row_bytes + b * bb, u), K::kElems);
      else
        std::memset(out + b * K::kElems, 0, K::kElems);
      for (int g = 0; g < kGroups; ++g) {
        tile.s[(b * kGroups + g) * kTileRows8 + r] = live ? u.scale[g] : 0.0f;
        tile.z[(b * kGroups + g) * kTileRows8 + r] = live && K::kOffset ? u.offset[g] : 0.0f;
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
// The 6-bit scales and mins of a Q4_K block (12 bytes at +4, dwords a0 a1
// a2) as 16 bytes [sc 0..7, m 0..7], in vector registers: the dwords
// [a0 & k6, (a2 & k4) | ((a0 >> 6) & k2) << 4, a1 & k6, ((a2 >> 4) & k4) | ((a1 >> 6) & k2) << 4].
DSV3_AVX3_VNNI HWY_INLINE __m128i Q4KScales(const uint8_t* blk) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 4));  // a0 a1 a2 (+ 4 level bytes)
  const __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0));               // a0 a2 a1 a2
  const __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0));               // a0 a0 a1 a1
  const __m128i low6 = _mm_and_si128(a, _mm_set1_epi32(0x3f3f3f3f));
  const __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srlv_epi32(a, _mm_set_epi32(4, 0, 0, 0)), _mm_set1_epi32(0x0f0f0f0f)),
                                  _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(b, 6), _mm_set1_epi32(0x03030303)), 4));
  return _mm_blend_epi32(low6, hi, 0b1010);
}
// [d x 8, dmin x 8] of a Q4_K block.
DSV3_AVX3_VNNI HWY_INLINE __m512 Q4KScaleFactors(const uint8_t* blk) {
  int32_t packed;
  std::memcpy(&packed, blk, 4);
  const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(packed));
  return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_castps128_ps512(dm));
}

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
    // Two accumulators per token (chunks 0, 2 and 1, 3): one chain of four
    // dependent FMAs per block was the kernel's limit.
    __m512 acc[T], acc2[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = acc2[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * 144;
      const __m512 sm = _mm512_mul_ps(Q4KScaleFactors(blk), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(Q4KScales(blk))));
      const __m512i v0 = _mm512_loadu_si512(blk + 16), v1 = _mm512_loadu_si512(blk + 80);
      const __m512i lv[4] = {_mm512_and_si512(v0, m4), _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4),
                             _mm512_and_si512(v1, m4), _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4)};
      for (int t = 0; t < T; ++t) {
        const __m512 P = _mm512_mul_ps(sm, _mm512_loadu_ps(f16 + t * (cols / 16) + b * 16));
        zacc[t] = _mm512_mask_sub_ps(zacc[t], 0xFF00, zacc[t], P);
        const int8_t* q = qp + t * cols + b * 256;
        for (int c = 0; c < 4; ++c) {
          const __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lv[c], _mm512_loadu_si512(q + 64 * c));
          __m512& a = c % 2 ? acc2[t] : acc[t];
          a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_permutexvar_ps(idx[c], P), a);
        }
      }
    }
    for (int t = 0; t < T; ++t)
      y[t * y_stride + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[t], acc2[t]), zacc[t]));
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

// ggml's Q8_0 rule per 32 values; sums of q per 16. With `biased` the stored
// bytes are q + 128 (VPDPBUSD's unsigned operand).
void QuantizeActs(const float* x, int64_t x_stride, Int8Acts& a, bool biased) {
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
      if (biased)
        for (int i = 0; i < 32; ++i) q[i] = static_cast<int8_t>(static_cast<uint8_t>(q[i]) ^ 0x80);
    }
  }
}

#define DSV3_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// QuantizeActs with AVX-512, the same bits: x * (1 / d) rounded to nearest
// even (the default rounding mode, as std::nearbyint), sums of 16 exact.
DSV3_VNNI_TARGET void QuantizeActsAvx512(const float* x, int64_t x_stride, Int8Acts& a, bool biased) {
  const __m128i bias = _mm_set1_epi8(biased ? static_cast<char>(0x80) : 0);
  for (int64_t t = 0; t < a.n; ++t) {
    const float* xt = x + t * x_stride;
    for (int64_t b = 0; b < a.cols / 32; ++b) {
      const __m512 v0 = _mm512_loadu_ps(xt + 32 * b), v1 = _mm512_loadu_ps(xt + 32 * b + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      a.d[t * (a.cols / 32) + b] = d;
      const __m512 idv = _mm512_set1_ps(id);
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv));
      int8_t* q = a.q + t * a.cols + 32 * b;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm_xor_si128(_mm512_cvtepi32_epi8(q0), bias));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm_xor_si128(_mm512_cvtepi32_epi8(q1), bias));
      a.sum16[t * (a.cols / 16) + 2 * b] = _mm512_reduce_add_epi32(q0);
      a.sum16[t * (a.cols / 16) + 2 * b + 1] = _mm512_reduce_add_epi32(q1);
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

// ---- The tile: interleaving and correction sums ----

// Scalar twin of InterleaveVnni: rm -> w, and c = -128 * sum of each group.
void InterleaveTwin(Int8Tile& tile, int64_t cols) {
  for (int r = 0; r < kTileRows8; ++r) {
    const int8_t* row = tile.rm + r * cols;
    for (int64_t k = 0; k < cols; ++k) tile.w[(k / 4) * 128 + 64 * (r / 16) + 4 * (r % 16) + k % 4] = row[k];
    for (int64_t g = 0; g < cols / tile.group; ++g) {
      int32_t sum = 0;
      for (int k = 0; k < tile.group; ++k) sum += row[g * tile.group + k];
      tile.c[g * kTileRows8 + r] = -128 * sum;
    }
  }
}


// The 16x16 dword transpose of r (row i = 16 dwords): out[m * 128] gets
// dword m of the 16 rows, for m < words.
DSV3_VNNI_TARGET inline void Transpose16(__m512i r[16], int64_t words, int8_t* out) {
  __m512i t[16];
  for (int j = 0; j < 8; ++j) {
    t[2 * j] = _mm512_unpacklo_epi32(r[2 * j], r[2 * j + 1]);
    t[2 * j + 1] = _mm512_unpackhi_epi32(r[2 * j], r[2 * j + 1]);
  }
  for (int j = 0; j < 4; ++j) {  // r[4j + m]: lane L holds dword 4L + m of rows 4j..4j+3
    r[4 * j] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
    r[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
    r[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
    r[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i x0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44), x1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xEE);
    const __m512i y0 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44),
                  y1 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xEE);
    const __m512i col[4] = {_mm512_shuffle_i32x4(x0, y0, 0x88), _mm512_shuffle_i32x4(x0, y0, 0xDD),
                            _mm512_shuffle_i32x4(x1, y1, 0x88), _mm512_shuffle_i32x4(x1, y1, 0xDD)};
    for (int l = 0; l < 4; ++l)
      if (4 * l + m < words) _mm512_store_si512(out + (4 * l + m) * 128, col[l]);
  }
}

// c = -128 * the sum of each group's levels, from the interleaved tile.
DSV3_VNNI_TARGET void CorrectionSums(Int8Tile& tile, int64_t cols) {
  const __m512i ones = _mm512_set1_epi8(1);
  const int steps = tile.group / 4;
  for (int h = 0; h < 2; ++h)
    for (int64_t g = 0; g < cols / tile.group; ++g) {
      __m512i sum = _mm512_setzero_si512();
      for (int s = 0; s < steps; ++s)
        sum = _mm512_dpbusd_epi32(sum, ones, _mm512_load_si512(tile.w + (g * steps + s) * 128 + 64 * h));
      _mm512_storeu_si512(tile.c + g * kTileRows8 + 16 * h,
                          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
    }
}

DSV3_VNNI_TARGET void InterleaveVnni(Int8Tile& tile, int64_t cols) {
  for (int h = 0; h < 2; ++h)
    for (int64_t c0 = 0; c0 < cols; c0 += 64) {
      const int64_t bytes = std::min<int64_t>(64, cols - c0);
      const __mmask64 mask = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
      __m512i r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_epi8(mask, tile.rm + (16 * h + i) * cols + c0);
      Transpose16(r, bytes / 4, tile.w + c0 * 32 + 64 * h);
    }
  CorrectionSums(tile, cols);
}

// Q8_0 rows straight into the tile (no staging): two blocks' 32 levels per
// 64-byte row vector, the scales converted from f16.
DSV3_VNNI_TARGET void PrepareQ8_0Vnni(const uint8_t* data, int64_t row_bytes, int rows, int64_t cols,
                                      Int8Tile& tile) {
  tile.group = 32, tile.rows = rows, tile.offset = false;
  const int64_t blocks = cols / 32;
  for (int h = 0; h < 2; ++h)
    for (int64_t b = 0; b < blocks; b += 2) {
      const bool pair = b + 1 < blocks;
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const int row = 16 * h + i;
        if (row >= rows) {
          r[i] = _mm512_setzero_si512();
          continue;
        }
        const uint8_t* blk = data + row * row_bytes + b * 34;
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        const __m256i hi = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 36)) : _mm256_setzero_si256();
        r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      }
      Transpose16(r, pair ? 16 : 8, tile.w + b * 32 * 32 + 64 * h);
    }
  // The f16 scales of 16 rows at once: a gather of the dwords starting at
  // each block (scale + first two levels), the low halves converted.
  const __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(static_cast<int>(row_bytes)));
  for (int h = 0; h < 2; ++h) {
    const int live = std::clamp(rows - 16 * h, 0, 16);
    const __mmask16 m = static_cast<__mmask16>((1u << live) - 1);
    const uint8_t* base = data + 16 * h * row_bytes;
    for (int64_t b = 0; b < blocks; ++b) {
      const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, base + b * 34, 1);
      _mm512_storeu_ps(tile.s + b * kTileRows8 + 16 * h, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw)));
    }
  }
  CorrectionSums(tile, cols);
}

// ---- FP8 e4m3 weights as int8 levels (issue 18) ----
// Per group of 32 columns and 16 rows (one VNNI lane block), the exponent E
// of the largest magnitude (E = max(field, 1)) sets a power-of-two step: an
// e4m3 value (8 + m) 2^(e - 10) (or m 2^-9 when e = 0) becomes the level
// round(value / 2^(E - 13)), at most 120 in magnitude, exact when e >= E - 3
// and rounded to nearest even below; the group's scale is 2^(E - 13) times
// the 128x128 block scale. Levels come from one 128-entry table per E.
struct Fp8Tables {
  alignas(64) int8_t level[16][128];
  Fp8Tables() {
    for (int big = 0; big < 16; ++big)
      for (int em = 0; em < 128; ++em) {
        const int e = em >> 3, m = em & 7, top = std::max(big, 1);
        const double units = e == 0 ? m : static_cast<double>((8 + m) << (e - 1));  // of 2^-9
        level[big][em] = static_cast<int8_t>(std::min(127.0, std::nearbyint(std::ldexp(units, 4 - top))));
      }
  }
};
const Fp8Tables& Fp8Levels() {
  static const Fp8Tables tables;
  return tables;
}
bool Fp8Int8Supports(const MatRef& w) { return w.cols % 32 == 0 && w.block_cols % 32 == 0 && w.block_rows > 0; }

// 2^(E - 13) for the group's largest exponent field (E = max(field, 1)).
inline float Fp8Step(int big) {
  return static_cast<float>(1.0 / 8192) * static_cast<float>(1 << std::max(big, 1));
}
// The block-scale rows of the tile's rows (absolute row r0 + i).
void Fp8ScaleRows(const MatRef& w, int64_t r0, int rows, const float* srow[kTileRows8]) {
  for (int i = 0; i < kTileRows8; ++i)
    srow[i] = i < rows ? w.scale_inv + ((w.row_offset + r0 + i) / w.block_rows) * w.scale_cols : nullptr;
}

// Scalar twin of PrepareFp8Vnni: the levels into the staging rows.
void PrepareFp8Twin(const MatRef& w, int64_t r0, int rows, Int8Tile& tile) {
  const int64_t cols = w.cols;
  const uint8_t* data = static_cast<const uint8_t*>(w.data) + r0 * cols;
  tile.group = 32, tile.rows = rows, tile.offset = false;
  const float* srow[kTileRows8];
  Fp8ScaleRows(w, r0, rows, srow);
  for (int h = 0; h < 2; ++h)
    for (int64_t g = 0; g < cols / 32; ++g) {
      int big = 0;
      for (int i = 16 * h; i < std::min(16 * h + 16, rows); ++i)
        for (int k = 0; k < 32; ++k) big = std::max(big, data[i * cols + 32 * g + k] & 0x7F);
      big >>= 3;
      for (int i = 16 * h; i < 16 * h + 16; ++i) {
        const bool live = i < rows;
        for (int k = 0; k < 32; ++k) {
          const uint8_t v = live ? data[i * cols + 32 * g + k] : 0;
          const int8_t q = Fp8Levels().level[big][v & 0x7F];
          tile.rm[i * cols + 32 * g + k] = static_cast<int8_t>(v & 0x80 ? -q : q);
        }
        tile.s[g * kTileRows8 + i] = live ? Fp8Step(big) * srow[i][32 * g / w.block_cols] : 0.0f;
      }
    }
}

// The largest byte of v.
DSV3_VNNI_TARGET inline int MaxByte(__m512i v) {
  v = _mm512_max_epu8(v, _mm512_shuffle_i64x2(v, v, 0x4E));
  v = _mm512_max_epu8(v, _mm512_shuffle_i64x2(v, v, 0xB1));
  v = _mm512_max_epu8(v, _mm512_bsrli_epi128(v, 8));
  v = _mm512_max_epu8(v, _mm512_bsrli_epi128(v, 4));
  v = _mm512_max_epu8(v, _mm512_bsrli_epi128(v, 2));
  v = _mm512_max_epu8(v, _mm512_bsrli_epi128(v, 1));
  return _mm_cvtsi128_si32(_mm512_castsi512_si128(v)) & 0xFF;
}

// FP8 rows r0.. straight into the tile: the raw bytes transposed, then each
// group's 8 vectors per 16 rows mapped to levels with one table lookup
// (VPERMI2B) and the sign applied.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi"))) void PrepareFp8Vnni(
    const MatRef& w, int64_t r0, int rows, Int8Tile& tile) {
  const int64_t cols = w.cols;
  const uint8_t* data = static_cast<const uint8_t*>(w.data) + r0 * cols;
  tile.group = 32, tile.rows = rows, tile.offset = false;
  const __m512i mag = _mm512_set1_epi8(0x7F);
  const float* srow[kTileRows8];
  Fp8ScaleRows(w, r0, rows, srow);
  for (int h = 0; h < 2; ++h) {
    const int live = std::clamp(rows - 16 * h, 0, 16);
    for (int64_t c0 = 0; c0 < cols; c0 += 64) {
      const int64_t bytes = std::min<int64_t>(64, cols - c0);
      const __mmask64 mask = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
      __m512i r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < live ? _mm512_maskz_loadu_epi8(mask, data + (16 * h + i) * cols + c0) : _mm512_setzero_si512();
      Transpose16(r, bytes / 4, tile.w + c0 * 32 + 64 * h);
    }
    __m512 block_scales = _mm512_setzero_ps();
    int64_t block_col = -1;
    for (int64_t g = 0; g < cols / 32; ++g) {
      int8_t* wg = tile.w + g * 8 * 128 + 64 * h;
      __m512i v[8], top = _mm512_setzero_si512();
      for (int s = 0; s < 8; ++s) v[s] = _mm512_load_si512(wg + s * 128), top = _mm512_max_epu8(top, _mm512_and_si512(v[s], mag));
      const int big = MaxByte(top) >> 3;
      const __m512i lo = _mm512_load_si512(Fp8Levels().level[big]), hi = _mm512_load_si512(Fp8Levels().level[big] + 64);
      for (int s = 0; s < 8; ++s) {
        const __m512i q = _mm512_permutex2var_epi8(lo, _mm512_and_si512(v[s], mag), hi);
        _mm512_store_si512(wg + s * 128, _mm512_mask_sub_epi8(q, _mm512_movepi8_mask(v[s]), _mm512_setzero_si512(), q));
      }
      const int64_t cb = 32 * g / w.block_cols;
      if (cb != block_col) {  // the 16 rows' block scales change every block_cols / 32 groups
        alignas(64) float bs[16];
        for (int i = 0; i < 16; ++i) bs[i] = i < live ? srow[16 * h + i][cb] : 0.0f;
        block_scales = _mm512_load_ps(bs), block_col = cb;
      }
      _mm512_storeu_ps(tile.s + g * kTileRows8 + 16 * h, _mm512_mul_ps(_mm512_set1_ps(Fp8Step(big)), block_scales));
    }
  }
  CorrectionSums(tile, cols);
}

// ---- The tile times the tokens ----

// Per token and weight group: dg = d_t, qdg = float(sum q) * d_t ([n, cols / group]).
struct GroupFactors {
  const float* dg = nullptr;
  const float* qdg = nullptr;
  int64_t groups = 0;
};

// Scalar twin: y[t * y_stride + r] for the tile's rows and tokens [0, n);
// u = q + 128 per activation ([n, cols]).
void TileGemmTwin(const Int8Tile& tile, const uint8_t* u, int64_t n, int64_t cols, const GroupFactors& f, float* y,
                  int64_t y_stride) {
  for (int64_t t = 0; t < n; ++t)
    for (int r = 0; r < tile.rows; ++r) {
      float acc = 0.0f;
      for (int64_t g = 0; g < f.groups; ++g) {
        int32_t isum = tile.c[g * kTileRows8 + r];
        for (int64_t k = g * tile.group; k < (g + 1) * tile.group; ++k)
          isum += static_cast<int32_t>(tile.w[(k / 4) * 128 + 64 * (r / 16) + 4 * (r % 16) + k % 4]) * u[t * cols + k];
        const float sd = tile.s[g * kTileRows8 + r] * f.dg[t * f.groups + g];
        acc = std::fma(static_cast<float>(isum), sd, acc);
        if (tile.offset) acc = std::fma(tile.z[g * kTileRows8 + r], f.qdg[t * f.groups + g], acc);
      }
      y[t * y_stride + r] = acc;
    }
}

// T tokens (u, dg, qdg start at the first) against the tile's 32 rows.
template <int T, int kGroup, bool kOffset>
DSV3_VNNI_TARGET void TileGemmVnniBlock(const Int8Tile& tile, const uint8_t* u, int64_t cols, const float* dg,
                                        const float* qdg, int64_t groups, float* y, int64_t y_stride) {
  constexpr int kSteps = kGroup / 4;
  __m512 f0[T], f1[T];
  for (int t = 0; t < T; ++t) f0[t] = f1[t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const __m512i c0 = _mm512_loadu_si512(tile.c + g * kTileRows8), c1 = _mm512_loadu_si512(tile.c + g * kTileRows8 + 16);
    __m512i i0[T], i1[T];
    for (int t = 0; t < T; ++t) i0[t] = c0, i1[t] = c1;
    const int8_t* wg = tile.w + g * kSteps * 128;
    const uint8_t* ug = u + g * kGroup;
    for (int s = 0; s < kSteps; ++s) {
      const __m512i w0 = _mm512_load_si512(wg + s * 128), w1 = _mm512_load_si512(wg + s * 128 + 64);
      for (int t = 0; t < T; ++t) {
        int32_t word;
        std::memcpy(&word, ug + t * cols + 4 * s, 4);
        const __m512i b = _mm512_set1_epi32(word);
        i0[t] = _mm512_dpbusd_epi32(i0[t], b, w0);
        i1[t] = _mm512_dpbusd_epi32(i1[t], b, w1);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(tile.s + g * kTileRows8), s1 = _mm512_loadu_ps(tile.s + g * kTileRows8 + 16);
    for (int t = 0; t < T; ++t) {
      const __m512 d = _mm512_set1_ps(dg[t * groups + g]);
      f0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[t]), _mm512_mul_ps(s0, d), f0[t]);
      f1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[t]), _mm512_mul_ps(s1, d), f1[t]);
    }
    if constexpr (kOffset) {
      const __m512 z0 = _mm512_loadu_ps(tile.z + g * kTileRows8), z1 = _mm512_loadu_ps(tile.z + g * kTileRows8 + 16);
      for (int t = 0; t < T; ++t) {
        const __m512 e = _mm512_set1_ps(qdg[t * groups + g]);
        f0[t] = _mm512_fmadd_ps(z0, e, f0[t]);
        f1[t] = _mm512_fmadd_ps(z1, e, f1[t]);
      }
    }
  }
  const int rows = tile.rows;
  const __mmask16 m0 = static_cast<__mmask16>(rows >= 16 ? 0xFFFF : (1u << rows) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(rows >= 32 ? 0xFFFF : rows <= 16 ? 0 : (1u << (rows - 16)) - 1);
  for (int t = 0; t < T; ++t) {
    _mm512_mask_storeu_ps(y + t * y_stride, m0, f0[t]);
    _mm512_mask_storeu_ps(y + t * y_stride + 16, m1, f1[t]);
  }
}

constexpr int kTokenBlock = 6;

template <int kGroup, bool kOffset>
DSV3_VNNI_TARGET void TileGemmVnniAll(const Int8Tile& tile, const uint8_t* u, int64_t n, int64_t cols,
                                      const GroupFactors& f, float* y, int64_t y_stride) {
  const int64_t blocks = (n + kTokenBlock - 1) / kTokenBlock, lines = tile.next_bytes / 64;
  for (int64_t t0 = 0; t0 < n; t0 += kTokenBlock) {
    const int64_t b = t0 / kTokenBlock;
    for (int64_t l = b * lines / blocks; l < (b + 1) * lines / blocks; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(tile.next + 64 * l), _MM_HINT_T1);
    const uint8_t* ut = u + t0 * cols;
    const float *dg = f.dg + t0 * f.groups, *qdg = f.qdg + t0 * f.groups;
    float* yt = y + t0 * y_stride;
    switch (std::min<int64_t>(kTokenBlock, n - t0)) {
      case 1: TileGemmVnniBlock<1, kGroup, kOffset>(tile, ut, cols, dg, qdg, f.groups, yt, y_stride); break;
      case 2: TileGemmVnniBlock<2, kGroup, kOffset>(tile, ut, cols, dg, qdg, f.groups, yt, y_stride); break;
      case 3: TileGemmVnniBlock<3, kGroup, kOffset>(tile, ut, cols, dg, qdg, f.groups, yt, y_stride); break;
      case 4: TileGemmVnniBlock<4, kGroup, kOffset>(tile, ut, cols, dg, qdg, f.groups, yt, y_stride); break;
      case 5: TileGemmVnniBlock<5, kGroup, kOffset>(tile, ut, cols, dg, qdg, f.groups, yt, y_stride); break;
      default: TileGemmVnniBlock<6, kGroup, kOffset>(tile, ut, cols, dg, qdg, f.groups, yt, y_stride); break;
    }
  }
}

void TileGemmVnni(const Int8Tile& tile, const uint8_t* u, int64_t n, int64_t cols, const GroupFactors& f, float* y,
                  int64_t y_stride) {
  if (tile.group == 16)
    tile.offset ? TileGemmVnniAll<16, true>(tile, u, n, cols, f, y, y_stride)
                : TileGemmVnniAll<16, false>(tile, u, n, cols, f, y, y_stride);
  else
    tile.offset ? TileGemmVnniAll<32, true>(tile, u, n, cols, f, y, y_stride)
                : TileGemmVnniAll<32, false>(tile, u, n, cols, f, y, y_stride);
}

int64_t Align16(int64_t floats) { return (floats + 15) / 16 * 16; }

}  // namespace

bool HasAvx512Vnni() {
  static const bool has = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return has;
}

int64_t QuantInt8ScratchFloats(const MatRef& w, int64_t n) {
  // Activations, then d and sum(q) * d per group, then the tile (staging,
  // interleaved levels, s, z, c: each at most [cols / 16][32]).
  const int64_t int8 = Align16(n * w.cols / 4) + Align16(n * w.cols / 32) + Align16(n * w.cols / 16) +
                       2 * Align16(n * w.cols / 16) + 2 * Align16(8 * w.cols) + 3 * Align16(2 * w.cols) + 64 +
                       Align16(n * w.cols / 4) + Align16(n * w.cols / 16);
  // FP8 below 8 tokens (or with blocks int8 cannot follow): the float kernel.
  return w.dtype == DType::kF8E4M3 ? std::max(int8, MatMulScratchFloats(w, n)) : int8;
}

bool HasAvx512Vbmi() {
  static const bool has = HasAvx512Vnni() && __builtin_cpu_supports("avx512vbmi");
  return has;
}

namespace {
// d_t and float(sum q) * d_t per token and weight group of `group` values.
void FillGroupFactors(const Int8Acts& a, int group, float* dg, float* qdg) {
  const int64_t groups = a.cols / group;
  for (int64_t t = 0; t < a.n; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      const float d = ActScale(a, t, g, group);
      dg[t * groups + g] = d;
      qdg[t * groups + g] = static_cast<float>(ActSum(a, t, g, group)) * d;
    }
}
int WeightGroup(DType t) {
  switch (t) {
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ6_K: return 16;
    default: return 32;
  }
}
}  // namespace

void QuantInt8MatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                         int64_t r0, int64_t r1, float* scratch, bool use_vnni) {
  if (n <= 0 || r0 >= r1) return;
  float* p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  Int8Acts a;
  a.n = n, a.cols = w.cols;
  a.q = reinterpret_cast<int8_t*>(p), p += Align16(n * w.cols / 4);
  a.d = p, p += Align16(n * w.cols / 32);
  a.sum16 = reinterpret_cast<int32_t*>(p), p += Align16(n * w.cols / 16);
  const bool vnni = use_vnni && HasAvx512Vnni();
  const bool fp8 = w.dtype == DType::kF8E4M3;
  if (fp8 && (n < kInt8MinTokens || !Fp8Int8Supports(w)))
    return MatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  if (!fp8 && n < kInt8MinTokens && (!vnni || DTypeBlockElems(w.dtype) != 256))
    return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  // From 8 tokens on the tile kernels take u = q + 128.
  const bool biased = n >= kInt8MinTokens;
  vnni ? QuantizeActsAvx512(x, x_stride, a, biased) : QuantizeActs(x, x_stride, a, biased);
  const int group = WeightGroup(w.dtype);
  GroupFactors f;
  float* dg = p;
  float* qdg = p + Align16(n * w.cols / 16);
  p += 2 * Align16(n * w.cols / 16);
  FillGroupFactors(a, group, dg, qdg);
  f.dg = dg, f.qdg = qdg, f.groups = w.cols / group;
  if (n < kInt8MinTokens) {
    if (HWY_DYNAMIC_DISPATCH(Int8DecodeImpl)(w, a, dg, qdg, y, y_stride, r0, r1, p)) return;
    return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  }
  Int8Tile tile;
  tile.rm = reinterpret_cast<int8_t*>(p), p += Align16(8 * w.cols);
  tile.w = reinterpret_cast<int8_t*>(p), p += Align16(8 * w.cols);
  tile.s = p, p += Align16(2 * w.cols);
  tile.z = p, p += Align16(2 * w.cols);
  tile.c = reinterpret_cast<int32_t*>(p);
  const uint8_t* u = reinterpret_cast<const uint8_t*>(a.q);
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  for (int64_t r = r0; r < r1; r += kTileRows8) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows8, r1 - r));
    const uint8_t* rows_data = static_cast<const uint8_t*>(w.data) + r * row_bytes;
    tile.next = rows_data + rows * row_bytes;
    tile.next_bytes = std::min<int64_t>(kTileRows8, r1 - r - rows) * row_bytes;
    if (fp8) {
      vnni && HasAvx512Vbmi() ? PrepareFp8Vnni(w, r, rows, tile) : PrepareFp8Twin(w, r, rows, tile);
      if (!vnni) {
        InterleaveTwin(tile, w.cols);
        TileGemmTwin(tile, u, n, w.cols, f, y + r, y_stride);
        continue;
      }
      if (!HasAvx512Vbmi()) InterleaveVnni(tile, w.cols);
      TileGemmVnni(tile, u, n, w.cols, f, y + r, y_stride);
      continue;
    }
    if (vnni && w.dtype == DType::kQ8_0) {
      PrepareQ8_0Vnni(rows_data, row_bytes, rows, w.cols, tile);
      TileGemmVnni(tile, u, n, w.cols, f, y + r, y_stride);
      continue;
    }
    HWY_DYNAMIC_DISPATCH(PrepareInt8TileImpl)(w.dtype, rows_data, row_bytes, rows, w.cols, tile);
    if (vnni) {
      InterleaveVnni(tile, w.cols);
      TileGemmVnni(tile, u, n, w.cols, f, y + r, y_stride);
    } else {
      InterleaveTwin(tile, w.cols);
      TileGemmTwin(tile, u, n, w.cols, f, y + r, y_stride);
    }
  }
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
