// FP8 matrices kept as int8 tiles (quant_fp8_tiles.h; --int8-fp8 at load,
// issue 18). Packing runs the per-call tile preparation of the FP8 int8 path
// once, at load, into the matrix's memory; afterwards prefill only points the
// tile at the stored levels and fills the per-row scales and correction sums,
// which removes the preparation (16% of a 512-token FP8 prefill) from every
// call. Decode (1..7 tokens) reads the stored tiles with VPDPBUSD: each 64-byte
// vector holds 4 columns of 16 rows, flipped to unsigned (w + 128) so that
// the broadcast activations can stay signed and the bias is one integer per
// token and group, 128 sum(q), instead of one per row and group. The
// integer sums and float steps are those of the tile product (TileGemmVnni),
// so a row gives the same bits whether it is decoded or prefilled, and the
// scalar twins give the same bits as the VNNI kernels.
#include "cpu/quant_fp8_tiles.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"

// GCC 12's AVX-512 intrinsics start from an uninitialised temporary on
// purpose; its -Wmaybe-uninitialized about them is noise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace dsv3::cpu {

// Block rows a multiple of 32: the 16 rows of a tile half share one block
// scale, and the scale grid covers the padded last tile.
bool I8TSupports(const MatRef& w) {
  return w.dtype == DType::kF8E4M3 && w.row_offset == 0 && w.rows > 0 && Fp8Int8Supports(w) &&
         w.block_rows % 32 == 0;
}

void PackFp8Tiles(const MatRef& w, int64_t t0, int64_t t1, uint8_t* levels, uint8_t* exps, float* scratch) {
  float* p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  uint8_t* rows_copy = reinterpret_cast<uint8_t*>(p);  // [32, cols]: levels may overwrite w's own rows
  p += 8 * w.cols;
  Int8Tile tile;
  tile.rm = reinterpret_cast<int8_t*>(p), p += 8 * w.cols;  // [32, cols] bytes (the twin's staging)
  tile.s = p, p += w.cols;                                    // [cols / 32, 32]
  tile.c = reinterpret_cast<int32_t*>(p);                     // [cols / 32, 32]
  const bool vnni = HasAvx512Vnni() && HasAvx512Vbmi();
  const int64_t groups = w.cols / 32;
  for (int64_t t = t0; t < t1; ++t) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows8, w.rows - kTileRows8 * t));
    std::memcpy(rows_copy, static_cast<const uint8_t*>(w.data) + t * kTileRows8 * w.cols, rows * w.cols);
    MatRef src = w;  // the tile's rows, scales still found by absolute row
    src.data = rows_copy, src.rows = rows, src.row_offset = w.row_offset + t * kTileRows8;
    tile.w = reinterpret_cast<int8_t*>(levels + t * kTileRows8 * w.cols);
    tile.big = exps + t * 2 * groups;
    if (vnni) {
      PrepareFp8Vnni(src, 0, rows, tile);
      continue;
    }
    PrepareFp8Twin(src, 0, rows, tile);
    InterleaveTwin(tile, w.cols);
  }
}

namespace {
// The stored levels of the tile holding absolute row a.
const int8_t* TileOf(const MatRef& w, int64_t a) {
  const int8_t* base = static_cast<const int8_t*>(w.data) - w.row_offset * w.cols;  // absolute row 0
  return base + a / kTileRows8 * kTileRows8 * w.cols;
}
// The scale of absolute row a's group g: step 2^(E - 13) times the block scale.
float GroupScale(const MatRef& w, int64_t a, int64_t g) {
  const float step = Fp8Step(w.tile_exp[(a / 16) * (w.cols / 32) + g]);
  return step * w.scale_inv[(a / w.block_rows) * w.scale_cols + 32 * g / w.block_cols];
}
}  // namespace

void DequantizeI8TRow(const MatRef& w, int64_t r, float* out) {
  const int64_t a = w.row_offset + r, i = a % kTileRows8;
  const int8_t* tile = TileOf(w, a);
  for (int64_t g = 0; g < w.cols / 32; ++g) {
    const float s = GroupScale(w, a, g);
    for (int64_t k = 32 * g; k < 32 * g + 32; ++k)
      out[k] = static_cast<float>(tile[(k / 4) * 128 + 64 * (i / 16) + 4 * (i % 16) + k % 4]) * s;
  }
}

void PrepareI8TTile(const MatRef& w, int64_t r, int rows, bool vnni, Int8Tile& tile) {
  const int64_t a = w.row_offset + r, groups = w.cols / 32, per_block = w.block_cols / 32;
  tile.group = 32, tile.rows = rows, tile.offset = false;
  tile.w = const_cast<int8_t*>(TileOf(w, a));  // read only: the products never write w
  for (int h = 0; h < 2; ++h) {
    const int live = std::clamp(rows - 16 * h, 0, 16);
    // GroupScale(w, a + 16 h, g) without a division per group.
    const uint8_t* exps = w.tile_exp + (a / 16 + h) * groups;
    const float* srow = w.scale_inv + ((a + 16 * h) / w.block_rows) * w.scale_cols;
    for (int64_t g = 0; g < groups; ++g) {
      const float s = live > 0 ? Fp8Step(exps[g]) * srow[g / per_block] : 0.0f;
      float* sg = tile.s + g * kTileRows8 + 16 * h;
      for (int i = 0; i < 16; ++i) sg[i] = i < live ? s : 0.0f;
    }
  }
  vnni ? CorrectionSums(tile, w.cols) : CorrectionSumsTwin(tile, w.cols);
}

// ---- Decode: 1..7 tokens ----

void DecodeI8TTwin(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qsum, int64_t n, float* y,
                   int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols, groups = cols / 32;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t a = w.row_offset + r, i = a % kTileRows8;
    const int8_t* tile = TileOf(w, a);
    for (int64_t t = 0; t < n; ++t) {
      float acc = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        // sum (w + 128) q - 128 sum q, as the VNNI kernel forms it: sum w q.
        int32_t isum = -128 * qsum[t * groups + g];
        for (int64_t k = 32 * g; k < 32 * g + 32; ++k)
          isum += (tile[(k / 4) * 128 + 64 * (i / 16) + 4 * (i % 16) + k % 4] + 128) * q[t * cols + k];
        const float sd = GroupScale(w, a, g) * dg[t * groups + g];
        acc = std::fma(static_cast<float>(isum), sd, acc);
      }
      y[t * y_stride + r] = acc;
    }
  }
}

namespace {
// T tokens against kHalves 16-row halves of one tile, from half h0 (absolute
// row a); `live` rows of output are stored from y (row a's column).
template <int T, int kHalves>
DSV3_VNNI_TARGET void DecodeI8THalves(const MatRef& w, int64_t a, int h0, int live, const int8_t* q,
                                      const float* dg, const int32_t* qsum, float* y, int64_t y_stride,
                                      const uint8_t* end) {
  const int64_t cols = w.cols, groups = cols / 32;
  const int8_t* tile = TileOf(w, a) + 64 * h0;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  // Per half: its exponents and block-scale row (no division in the loop:
  // the column block advances every block_cols / 32 groups).
  const uint8_t* exps[kHalves];
  const float* srow[kHalves];
  for (int h = 0; h < kHalves; ++h) {
    exps[h] = w.tile_exp + ((a + 16 * h) / 16) * groups;
    srow[h] = w.scale_inv + ((a + 16 * h) / w.block_rows) * w.scale_cols;
  }
  const int64_t per_block = w.block_cols / 32;
  int64_t cb = 0, in_block = 0;
  __m512 f[T][kHalves];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < kHalves; ++h) f[t][h] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* wg = tile + g * 8 * 128;
    PrefetchAhead(reinterpret_cast<const uint8_t*>(wg), 1024, end);
    __m512i acc[T][kHalves];
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < kHalves; ++h) acc[t][h] = _mm512_set1_epi32(-128 * qsum[t * groups + g]);
    for (int s = 0; s < 8; ++s) {
      __m512i wv[kHalves];
      for (int h = 0; h < kHalves; ++h) wv[h] = _mm512_xor_si512(_mm512_load_si512(wg + s * 128 + 64 * h), flip);
      for (int t = 0; t < T; ++t) {
        int32_t word;
        std::memcpy(&word, q + t * cols + 32 * g + 4 * s, 4);
        const __m512i b = _mm512_set1_epi32(word);
        for (int h = 0; h < kHalves; ++h) acc[t][h] = _mm512_dpbusd_epi32(acc[t][h], wv[h], b);
      }
    }
    for (int h = 0; h < kHalves; ++h) {
      const __m512 s = _mm512_set1_ps(Fp8Step(exps[h][g]) * srow[h][cb]);  // = GroupScale(w, a + 16 h, g)
      for (int t = 0; t < T; ++t) {
        const __m512 sd = _mm512_mul_ps(s, _mm512_set1_ps(dg[t * groups + g]));
        f[t][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][h]), sd, f[t][h]);
      }
    }
    if (++in_block == per_block) in_block = 0, ++cb;
  }
  for (int h = 0; h < kHalves; ++h) {
    const int rows = std::clamp(live - 16 * h, 0, 16);
    const __mmask16 m = static_cast<__mmask16>(rows == 16 ? 0xFFFF : (1u << rows) - 1);
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride + 16 * h, m, f[t][h]);
  }
}

// Rows [r0, r1): whole tiles two halves at a time, a half where the range
// starts or ends inside a tile.
template <int T>
DSV3_VNNI_TARGET void DecodeI8TRows(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qsum,
                                    float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t a1 = w.row_offset + r1;
  const uint8_t* end = reinterpret_cast<const uint8_t*>(TileOf(w, a1 + kTileRows8 - 1));
  for (int64_t r = r0; r < r1;) {
    const int64_t a = w.row_offset + r;
    const int h = static_cast<int>(a / 16 % 2), live = static_cast<int>(std::min<int64_t>(kTileRows8, r1 - r));
    if (h == 0 && live > 16) {
      DecodeI8THalves<T, 2>(w, a, 0, live, q, dg, qsum, y + r, y_stride, end);
      r += kTileRows8;
    } else {
      DecodeI8THalves<T, 1>(w, a, h, std::min(live, 16), q, dg, qsum, y + r, y_stride, end);
      r += 16;
    }
  }
}
}  // namespace

void DecodeI8TVnni(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qsum, int64_t n, float* y,
                   int64_t y_stride, int64_t r0, int64_t r1) {
  switch (n) {
    case 1: return DecodeI8TRows<1>(w, q, dg, qsum, y, y_stride, r0, r1);
    case 2: return DecodeI8TRows<2>(w, q, dg, qsum, y, y_stride, r0, r1);
    case 3: return DecodeI8TRows<3>(w, q, dg, qsum, y, y_stride, r0, r1);
    case 4: return DecodeI8TRows<4>(w, q, dg, qsum, y, y_stride, r0, r1);
    case 5: return DecodeI8TRows<5>(w, q, dg, qsum, y, y_stride, r0, r1);
    case 6: return DecodeI8TRows<6>(w, q, dg, qsum, y, y_stride, r0, r1);
    default: return DecodeI8TRows<7>(w, q, dg, qsum, y, y_stride, r0, r1);
  }
}

}  // namespace dsv3::cpu
