// The int8 tile (quant_int8_tile.h): filling it from each weight format and
// multiplying it by the tokens' int8 activations. Interleaving is a 16x16
// dword transpose per 64 columns; the product's register block is 32 rows x 6
// tokens (12 VPDPBUSD per 2 weight loads and 6 broadcasts) with one float step
// per group. FP8 e4m3 weights become levels with a power-of-two step per 16
// rows x 32 columns (issue 18; see PrepareFp8Twin). Every VNNI function has a
// scalar twin giving the same bits (tests/quant_int8_test).
#include "cpu/quant_int8_tile.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"

// GCC 12's AVX-512 intrinsics start from an uninitialised temporary on
// purpose; its -Wmaybe-uninitialized about them is noise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace dsv3::cpu {

bool HasAvx512Vbmi() {
  static const bool has = HasAvx512Vnni() && __builtin_cpu_supports("avx512vbmi");
  return has;
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

void CorrectionSumsTwin(Int8Tile& tile, int64_t cols) {
  for (int r = 0; r < kTileRows8; ++r)
    for (int64_t g = 0; g < cols / tile.group; ++g) {
      int32_t sum = 0;
      for (int64_t k = g * tile.group; k < (g + 1) * tile.group; ++k)
        sum += tile.w[(k / 4) * 128 + 64 * (r / 16) + 4 * (r % 16) + k % 4];
      tile.c[g * kTileRows8 + r] = -128 * sum;
    }
}

// Eight (group, half) sums at a time: one chain of dependent VPDPBUSDs per
// sum would wait on their latency (this ran at a fifth of the throughput
// and was 7% of an FP8-tile prefill).
DSV3_VNNI_TARGET void CorrectionSums(Int8Tile& tile, int64_t cols) {
  constexpr int kChains = 8;
  const __m512i ones = _mm512_set1_epi8(1);
  const int steps = tile.group / 4;
  const int64_t sums = 2 * (cols / tile.group);  // (group, half) pairs: index 2 g + h
  int64_t i0 = 0;
  for (; i0 + kChains <= sums; i0 += kChains) {
    __m512i acc[kChains];
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_setzero_si512();
    for (int s = 0; s < steps; ++s)
      for (int j = 0; j < kChains; ++j) {
        const int64_t g = (i0 + j) / 2, h = (i0 + j) % 2;
        acc[j] = _mm512_dpbusd_epi32(acc[j], ones, _mm512_load_si512(tile.w + (g * steps + s) * 128 + 64 * h));
      }
    for (int j = 0; j < kChains; ++j) {
      const int64_t g = (i0 + j) / 2, h = (i0 + j) % 2;
      _mm512_storeu_si512(tile.c + g * kTileRows8 + 16 * h, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(acc[j], 7)));
    }
  }
  for (; i0 < sums; ++i0) {
    const int64_t g = i0 / 2, h = i0 % 2;
    __m512i sum = _mm512_setzero_si512();
    for (int s = 0; s < steps; ++s)
      sum = _mm512_dpbusd_epi32(sum, ones, _mm512_load_si512(tile.w + (g * steps + s) * 128 + 64 * h));
    _mm512_storeu_si512(tile.c + g * kTileRows8 + 16 * h, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
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

// The f16 scales (first 2 bytes of each block) of 16 rows at once: a gather
// of the dwords starting at each block, the low halves converted.
static DSV3_VNNI_TARGET void GatherF16Scales(const uint8_t* data, int64_t row_bytes, int rows, int64_t blocks,
                                             int64_t block_bytes, Int8Tile& tile) {
  const __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(static_cast<int>(row_bytes)));
  for (int h = 0; h < 2; ++h) {
    const int live = std::clamp(rows - 16 * h, 0, 16);
    const __mmask16 m = static_cast<__mmask16>((1u << live) - 1);
    const uint8_t* base = data + 16 * h * row_bytes;
    for (int64_t b = 0; b < blocks; ++b) {
      const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, base + b * block_bytes, 1);
      _mm512_storeu_ps(tile.s + b * kTileRows8 + 16 * h, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw)));
    }
  }
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
  GatherF16Scales(data, row_bytes, rows, blocks, 34, tile);
  CorrectionSums(tile, cols);
}

// Q5_0 rows straight into the tile: two blocks' 64 signed levels per row
// vector (VPERMB spreads each block's 16 qs bytes over its 32 values, a
// per-half shift and mask give the nibbles, the two qh words side by side
// are the fifth bits' byte mask), minus 16; scales gathered as Q8_0's.
DSV3_VBMI_TARGET void PrepareQ5_0Vnni(const uint8_t* data, int64_t row_bytes, int rows, int64_t cols,
                                      Int8Tile& tile) {
  tile.group = 32, tile.rows = rows, tile.offset = false;
  const int64_t blocks = cols / 32;
  alignas(64) uint8_t spread_bytes[64];  // [qs_A, qs_A, qs_B, qs_B]
  for (int i = 0; i < 64; ++i) spread_bytes[i] = static_cast<uint8_t>(6 + 22 * (i / 32) + i % 16);
  const __m512i spread = _mm512_load_si512(spread_bytes);
  const __m512i shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                         0x0004000400040004, 0, 0);  // high nibbles in bytes 16..31, 48..63
  const __m512i m4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(16);
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
        const uint8_t* blk = data + row * row_bytes + b * 22;
        uint32_t qa, qb = 0;
        std::memcpy(&qa, blk + 2, 4);
        if (pair) std::memcpy(&qb, blk + 24, 4);
        const __m512i raw = _mm512_maskz_loadu_epi8(pair ? (1ull << 44) - 1 : (1ull << 22) - 1, blk);
        __m512i u = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(spread, raw), shift), m4);
        u = _mm512_mask_add_epi8(u, qa | (static_cast<uint64_t>(qb) << 32), u, sixteen);
        r[i] = _mm512_sub_epi8(u, sixteen);
      }
      Transpose16(r, pair ? 16 : 8, tile.w + b * 32 * 32 + 64 * h);
    }
  GatherF16Scales(data, row_bytes, rows, blocks, 22, tile);
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
static const Fp8Tables& Fp8Levels() {
  static const Fp8Tables tables;
  return tables;
}
bool Fp8Int8Supports(const MatRef& w) { return w.cols % 32 == 0 && w.block_cols % 32 == 0 && w.block_rows > 0; }

// The block-scale rows of the tile's rows (absolute row r0 + i).
static void Fp8ScaleRows(const MatRef& w, int64_t r0, int rows, const float* srow[kTileRows8]) {
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
      if (tile.big) tile.big[h * (cols / 32) + g] = static_cast<uint8_t>(big);
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
DSV3_VBMI_TARGET void PrepareFp8Vnni(
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
      if (tile.big) tile.big[h * (cols / 32) + g] = static_cast<uint8_t>(big);
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

}  // namespace dsv3::cpu
