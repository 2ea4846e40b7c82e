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
// the register block is 32 rows x 6 tokens (the tile and its product:
// quant_int8_tile.cc; FP8 weights take it too, issue 18). The scalar twin
// computes the same integer sums and the same fused float steps (std::fma),
// so both give the same bits. The error against the float32-activation path is the
// activations' rounding: at most d_t / 2 per activation (tests bound it).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/quant_int8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"
#include "core/q4k_r4.h"
#include "cpu/kernels.h"
#include "cpu/quant_int8_tile.h"
#include "cpu/quant_q4k_r4.h"
#include "cpu/quant_decode32.h"
#include "cpu/quant_stored_tiles.h"
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
// Fewer tokens: the float decode kernel (quant_matmul.cc) streams the blocks
// faster than tiles can be prepared.
constexpr int64_t kInt8MinTokens = 8;
// From this many tokens on, tiles stored at load go through the tile product.
constexpr int64_t kStoredTileGemmTokens = 64;
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
  const uint8_t* end = static_cast<const uint8_t*>(w.data) + r1 * nb * bb;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * nb * bb;
    __m512 acc[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      PrefetchAhead(row + b * bb, bb, end);
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
  const uint8_t* end = static_cast<const uint8_t*>(w.data) + r1 * nb * 144;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * nb * 144;
    // Two accumulators per token (chunks 0, 2 and 1, 3): one chain of four
    // dependent FMAs per block was the kernel's limit.
    __m512 acc[T], acc2[T], zacc[T];
    for (int t = 0; t < T; ++t) acc[t] = acc2[t] = zacc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * 144;
      PrefetchAhead(blk, 144, end);
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
  // --repack's Q4_K_R4: the expanded activations (decode) or the tile's rows
  // put back into Q4_K bytes (prefill).
  const int64_t r4 = w.dtype == DType::kQ4_KR4 ? Align16(Q4KR4ActBytes(n, w.cols) / 4 + 16) +
                                                     Align16(kTileRows8 * DTypeBytes(w.dtype, w.cols) / 4 + 16)
                                               : 0;
  const int64_t d32 = Decode32Supports(w.dtype) ? Align16(Decode32ActBytes(n, w.cols) / 4 + 16) : 0;
  // FP8 below 8 tokens (or with blocks int8 cannot follow): the float kernel;
  // FP8 tiles in a view cut off their tile grid: the dequantizing one.
  // Stored tiles below 64 tokens: qbias, then the kernel's work after int8's activations.
  const int64_t stored = int8 + Align16(n * w.cols / 32) + DecodeStoredWorkFloats(w.cols, n) + 16;
  if (w.dtype == DType::kI8T32 || w.dtype == DType::kQ8_0T32) return std::max(stored, QuantMatMulScratchFloats(w, n));
  return w.dtype == DType::kF8E4M3 ? std::max(int8, MatMulScratchFloats(w, n)) : int8 + r4 + d32;
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

namespace {
// Fills one tile with rows [r, r + rows) of w in the format's way.
// `staging` holds a Q4_K_R4 tile's rows put back into Q4_K bytes.
void PrepareTile(const MatRef& w, int64_t r, int rows, bool vnni, Int8Tile& tile, uint8_t* staging) {
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  const uint8_t* rows_data = static_cast<const uint8_t*>(w.data) + r * row_bytes;
  if (w.dtype == DType::kI8T32 || w.dtype == DType::kQ8_0T32) return PrepareStoredTile(w, r, rows, vnni, tile);
  if (w.dtype == DType::kQ4_KR4) {
    UnpackQ4KR4Rows(w, r, rows, staging, vnni);
    HWY_DYNAMIC_DISPATCH(PrepareInt8TileImpl)(DType::kQ4_K, staging, row_bytes, rows, w.cols, tile);
  } else if (w.dtype == DType::kF8E4M3) {
    if (vnni && HasAvx512Vbmi()) return PrepareFp8Vnni(w, r, rows, tile);
    PrepareFp8Twin(w, r, rows, tile);
  } else if (vnni && w.dtype == DType::kQ8_0) {
    return PrepareQ8_0Vnni(rows_data, row_bytes, rows, w.cols, tile);
  } else if (vnni && w.dtype == DType::kQ5_0 && HasAvx512Vbmi()) {
    return PrepareQ5_0Vnni(rows_data, row_bytes, rows, w.cols, tile);
  } else {
    HWY_DYNAMIC_DISPATCH(PrepareInt8TileImpl)(w.dtype, rows_data, row_bytes, rows, w.cols, tile);
  }
  vnni ? InterleaveVnni(tile, w.cols) : InterleaveTwin(tile, w.cols);
}

// Rows [r0, r1) of w times the tokens' activations (u = q + 128), one 32-row
// tile at a time in scratch p; the next tile's rows are prefetched while
// this one's products run.
void RunTiles(const MatRef& w, const uint8_t* u, const GroupFactors& f, bool vnni, float* y, int64_t y_stride,
              int64_t r0, int64_t r1, float* p) {
  Int8Tile tile;
  tile.rm = reinterpret_cast<int8_t*>(p), p += Align16(8 * w.cols);
  tile.w = reinterpret_cast<int8_t*>(p), p += Align16(8 * w.cols);
  tile.s = p, p += Align16(2 * w.cols);
  tile.z = p, p += Align16(2 * w.cols);
  tile.c = reinterpret_cast<int32_t*>(p), p += Align16(2 * w.cols);
  uint8_t* staging = reinterpret_cast<uint8_t*>(p + 16);
  const int64_t n = f.tokens;
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  for (int64_t r = r0; r < r1; r += kTileRows8) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows8, r1 - r));
    tile.next = static_cast<const uint8_t*>(w.data) + (r + rows) * row_bytes;
    tile.next_bytes = std::min<int64_t>(kTileRows8, r1 - r - rows) * row_bytes;
    PrepareTile(w, r, rows, vnni, tile, staging);
    vnni ? TileGemmVnni(tile, u, n, w.cols, f, y + r, y_stride) : TileGemmTwin(tile, u, n, w.cols, f, y + r, y_stride);
  }
}
}  // namespace

namespace {
// Rows [r0, r1) of a Q4_K_R4 matrix, r0 a multiple of 4 (products split rows
// at multiples of 16; views start on a group). A last group cut by r1 (a
// view of fewer rows, e.g. the MTP draft vocabulary) goes through a buffer.
void DecodeQ4KR4(const MatRef& w, const Q4KR4Acts& acts, bool vnni, float* y, int64_t y_stride, int64_t r0,
                 int64_t r1) {
  auto run = [&](float* out, int64_t stride, int64_t a, int64_t b) {
    vnni ? DecodeQ4KR4Vnni(w, acts, out, stride, a, b) : DecodeQ4KR4Twin(w, acts, out, stride, a, b);
  };
  const int64_t whole = r0 + (r1 - r0) / kQ4KR4Rows * kQ4KR4Rows;
  if (whole > r0) run(y + r0, y_stride, r0, whole);
  if (whole == r1) return;
  float part[kInt8MinTokens * kQ4KR4Rows];
  run(part, kQ4KR4Rows, whole, whole + kQ4KR4Rows);
  for (int64_t t = 0; t < acts.n; ++t)
    for (int64_t r = whole; r < r1; ++r) y[t * y_stride + r] = part[t * kQ4KR4Rows + r - whole];
}
}  // namespace

namespace {
// Tiles stored at load through their own kernel, which takes sum(q) per 32
// (in p) instead of per-row correction sums.
void RunStoredTiles(const MatRef& w, const Int8Acts& a, const float* dg, bool vnni, float* y, int64_t y_stride,
                    int64_t r0, int64_t r1, float* p) {
  const int64_t groups = w.cols / 32;
  int32_t* qbias = reinterpret_cast<int32_t*>(p);  // [n, cols / 32]
  for (int64_t t = 0; t < a.n; ++t)
    for (int64_t g = 0; g < groups; ++g) qbias[t * groups + g] = -128 * ActSum(a, t, g, 32);
  vnni ? DecodeStoredVnni(w, a.q, dg, qbias, a.n, y, y_stride, r0, r1, p + Align16(a.n * groups))
       : DecodeStoredTwin(w, a.q, dg, qbias, a.n, y, y_stride, r0, r1);
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
  // Tiles stored at load: their own kernel (from 16-row halves) below 64
  // tokens on VNNI, below 8 otherwise; whole tiles through the tile product
  // above (its register block outruns the kernel's xor and per-pass scales
  // there: kernels_bench BM_MatMulFp8Tiles 16 / 64 / 512 tokens 470-488 /
  // 500-519 / 513 GOP/s through the kernel, 422 / 515 / 533 through the
  // tile product).
  const bool i8t = w.dtype == DType::kI8T32 || w.dtype == DType::kQ8_0T32;
  const bool i8t_kernel = i8t && (n < kInt8MinTokens || (vnni && n < kStoredTileGemmTokens));
  if (i8t && (w.row_offset + r0) % (i8t_kernel ? 16 : kTileRows8) != 0)
    return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  const bool r4 = w.dtype == DType::kQ4_KR4;  // its decode kernel has a scalar twin
  const bool d32 = Decode32Supports(w.dtype) && vnni && HasAvx512Vbmi();
  if (!fp8 && !r4 && !d32 && !i8t && n < kInt8MinTokens && (!vnni || DTypeBlockElems(w.dtype) != 256))
    return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  // From 8 tokens on the tile kernels take u = q + 128.
  const bool biased = n >= kInt8MinTokens && !i8t_kernel;
  vnni ? QuantizeActsAvx512(x, x_stride, a, biased) : QuantizeActs(x, x_stride, a, biased);
  const int group = WeightGroup(w.dtype);
  GroupFactors f;
  float* dg = p;
  float* qdg = p + Align16(n * w.cols / 16);
  p += 2 * Align16(n * w.cols / 16);
  FillGroupFactors(a, group, dg, qdg);
  f.dg = dg, f.qdg = qdg, f.groups = w.cols / group, f.tokens = n;
  if (i8t_kernel) return RunStoredTiles(w, a, dg, vnni, y, y_stride, r0, r1, p);
  if (n < kInt8MinTokens && r4) {
    Q4KR4Acts acts;
    ExpandQ4KR4Acts(a.q, dg, qdg, n, w.cols, acts, reinterpret_cast<uint8_t*>(p), vnni);
    return DecodeQ4KR4(w, acts, vnni && HasAvx512Vbmi(), y, y_stride, r0, r1);
  }
  if (n < kInt8MinTokens && d32) {
    Decode32Acts acts;
    Expand32Acts(w.dtype, a.q, dg, a.sum16, n, w.cols, acts, reinterpret_cast<uint8_t*>(p), true);
    return Decode32Vnni(w, acts, y, y_stride, r0, r1);
  }
  if (n < kInt8MinTokens) {
    if (HWY_DYNAMIC_DISPATCH(Int8DecodeImpl)(w, a, dg, qdg, y, y_stride, r0, r1, p)) return;
    return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
  }
  RunTiles(w, reinterpret_cast<const uint8_t*>(a.q), f, vnni, y, y_stride, r0, r1, p);
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
