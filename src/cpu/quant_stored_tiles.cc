// Matrices kept as int8 tiles from load (quant_stored_tiles.h): FP8 e4m3
// under --int8-fp8 (DType I8_T32, issue 18) and Q8_0 under --repack
// (Q8_0_T32, issue 16). Packing runs the per-call tile preparation of the
// int8 path once, at load, into the matrix's memory; afterwards prefill only
// points the tile at the stored levels and fills the per-row scales and
// correction sums, which removes the preparation (16% of a 512-token FP8
// prefill) from every call. Below 64 tokens (decode, batched decode, most
// experts in prefill) a kernel of their own reads the stored tiles with
// VPDPBUSD: each 64-byte vector holds 4 columns of 16 rows, flipped to
// unsigned (w + 128) so that the broadcast activations can stay signed and
// the bias is one integer per token and group, 128 sum(q), instead of one
// per row and group. The integer sums and float steps are those of the tile
// product (TileGemmVnni), so a row gives the same bits whether it is decoded
// or prefilled, and the scalar twins give the same bits as the VNNI kernels.
#include "cpu/quant_stored_tiles.h"

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

// FP8: block rows a multiple of 32, so the 16 rows of a tile half share one
// block scale and the scale grid covers the padded last tile.
bool StoredTilesSupport(const MatRef& w) {
  if (w.row_offset != 0 || w.rows <= 0 || w.cols % 32 != 0) return false;
  if (w.dtype == DType::kQ8_0) return true;
  return w.dtype == DType::kF8E4M3 && Fp8Int8Supports(w) && w.block_rows % 32 == 0;
}

DType StoredTilesType(DType t) { return t == DType::kQ8_0 ? DType::kQ8_0T32 : DType::kI8T32; }

int64_t StoredTilesBytes(const MatRef& w) {
  return StoredTiles(w.rows) * kTileRows8 * static_cast<int64_t>(DTypeBytes(StoredTilesType(w.dtype), w.cols));
}
int64_t StoredTilesExpBytes(const MatRef& w) {
  return w.dtype == DType::kF8E4M3 ? StoredTiles(w.rows) * 2 * (w.cols / 32) : 0;
}

namespace {
// Q8_0 tiles: the f16 scales [cols / 32, 32] of a tile follow its levels.
void CopyQ8_0Scales(const uint8_t* rows_data, int64_t row_bytes, int rows, int64_t cols, uint8_t* out) {
  uint16_t* s = reinterpret_cast<uint16_t*>(out);
  for (int64_t g = 0; g < cols / 32; ++g)
    for (int i = 0; i < kTileRows8; ++i) {
      uint16_t d = 0;
      if (i < rows) std::memcpy(&d, rows_data + i * row_bytes + g * 34, 2);
      s[g * kTileRows8 + i] = d;
    }
}

// One Q8_0 tile, scalar: the levels interleaved, then the scales.
void PackQ8_0TileTwin(const uint8_t* rows_data, int64_t row_bytes, int rows, int64_t cols, uint8_t* out) {
  for (int i = 0; i < kTileRows8; ++i)
    for (int64_t k = 0; k < cols; ++k)
      out[(k / 4) * 128 + 64 * (i / 16) + 4 * (i % 16) + k % 4] =
          i < rows ? rows_data[i * row_bytes + k / 32 * 34 + 2 + k % 32] : 0;
  CopyQ8_0Scales(rows_data, row_bytes, rows, cols, out + kTileRows8 * cols);
}
}  // namespace

void PackStoredTiles(const MatRef& w, int64_t t0, int64_t t1, uint8_t* dst, uint8_t* exps, float* scratch) {
  float* p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  uint8_t* rows_copy = reinterpret_cast<uint8_t*>(p);  // [32, cols]: levels may overwrite w's own rows
  p += 8 * w.cols;
  Int8Tile tile;
  tile.rm = reinterpret_cast<int8_t*>(p), p += 8 * w.cols;  // [32, cols] bytes (the twin's staging)
  tile.s = p, p += w.cols;                                    // [cols / 32, 32]
  tile.c = reinterpret_cast<int32_t*>(p);                     // [cols / 32, 32]
  const int64_t groups = w.cols / 32, row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  const int64_t tile_bytes = kTileRows8 * static_cast<int64_t>(DTypeBytes(StoredTilesType(w.dtype), w.cols));
  for (int64_t t = t0; t < t1; ++t) {
    const int rows = static_cast<int>(std::min<int64_t>(kTileRows8, w.rows - kTileRows8 * t));
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + t * kTileRows8 * row_bytes;
    uint8_t* out = dst + t * tile_bytes;
    if (w.dtype == DType::kQ8_0) {
      if (!HasAvx512Vnni()) {
        PackQ8_0TileTwin(src, row_bytes, rows, w.cols, out);
        continue;
      }
      tile.w = reinterpret_cast<int8_t*>(out);
      PrepareQ8_0Vnni(src, row_bytes, rows, w.cols, tile);
      CopyQ8_0Scales(src, row_bytes, rows, w.cols, out + kTileRows8 * w.cols);
      continue;
    }
    std::memcpy(rows_copy, src, rows * w.cols);
    MatRef fp8 = w;  // the tile's rows, scales still found by absolute row
    fp8.data = rows_copy, fp8.rows = rows, fp8.row_offset = w.row_offset + t * kTileRows8;
    tile.w = reinterpret_cast<int8_t*>(out);
    tile.big = exps + t * 2 * groups;
    if (HasAvx512Vnni() && HasAvx512Vbmi()) {
      PrepareFp8Vnni(fp8, 0, rows, tile);
      continue;
    }
    PrepareFp8Twin(fp8, 0, rows, tile);
    InterleaveTwin(tile, w.cols);
  }
}

namespace {
// The stored levels of the tile holding absolute row a (a Q8_0 tile's scales
// follow them).
const int8_t* TileOf(const MatRef& w, int64_t a) {
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  const int8_t* base = static_cast<const int8_t*>(w.data) - w.row_offset * row_bytes;  // absolute row 0
  return base + a / kTileRows8 * kTileRows8 * row_bytes;
}
const uint16_t* Q8_0Scales(const MatRef& w, const int8_t* tile) {
  return reinterpret_cast<const uint16_t*>(tile + kTileRows8 * w.cols);
}
// The FP8 scales of the 16-row half holding absolute row a: group g's is
// the step 2^(E - 13) of its exponent times the block scale of column block
// cb (= 32 g / block_cols; callers walking the groups keep cb themselves).
struct Fp8Half {
  const uint8_t* exps = nullptr;
  const float* srow = nullptr;
  float Scale(int64_t g, int64_t cb) const { return Fp8Step(exps[g]) * srow[cb]; }
};
Fp8Half Fp8HalfOf(const MatRef& w, int64_t a) {
  return {w.tile_exp + (a / 16) * (w.cols / 32), w.scale_inv + (a / w.block_rows) * w.scale_cols};
}
// The scale of absolute row a's group g: FP8 as above; Q8_0, the block's d.
float GroupScale(const MatRef& w, int64_t a, int64_t g) {
  if (w.dtype == DType::kQ8_0T32) return F16ToF32(Q8_0Scales(w, TileOf(w, a))[g * kTileRows8 + a % kTileRows8]);
  return Fp8HalfOf(w, a).Scale(g, 32 * g / w.block_cols);
}
int8_t Level(const int8_t* tile, int64_t i, int64_t k) {
  return tile[(k / 4) * 128 + 64 * (i / 16) + 4 * (i % 16) + k % 4];
}
}  // namespace

void DequantizeStoredTileRow(const MatRef& w, int64_t r, float* out) {
  const int64_t a = w.row_offset + r, i = a % kTileRows8;
  const int8_t* tile = TileOf(w, a);
  for (int64_t g = 0; g < w.cols / 32; ++g) {
    const float s = GroupScale(w, a, g);
    for (int64_t k = 32 * g; k < 32 * g + 32; ++k) out[k] = static_cast<float>(Level(tile, i, k)) * s;
  }
}

namespace {
// A Q8_0 tile's scales as floats (F16ToF32's values, converted 16 at a time)
// and its correction sums.
DSV3_VNNI_TARGET void Q8_0TileScales(const uint16_t* s, int64_t groups, int64_t cols, Int8Tile& tile) {
  for (int64_t j = 0; j < groups * kTileRows8; j += 16)
    _mm512_storeu_ps(tile.s + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + j))));
  CorrectionSums(tile, cols);
}
}  // namespace

void PrepareStoredTile(const MatRef& w, int64_t r, int rows, bool vnni, Int8Tile& tile) {
  const int64_t a = w.row_offset + r, groups = w.cols / 32;
  tile.group = 32, tile.rows = rows, tile.offset = false;
  tile.w = const_cast<int8_t*>(TileOf(w, a));  // read only: the products never write w
  if (w.dtype == DType::kQ8_0T32) {
    const uint16_t* s = Q8_0Scales(w, tile.w);
    if (vnni) return Q8_0TileScales(s, groups, w.cols, tile);
    for (int64_t j = 0; j < groups * kTileRows8; ++j) tile.s[j] = F16ToF32(s[j]);  // 0 past the rows
  } else {
    const int64_t per_block = w.block_cols / 32;
    for (int h = 0; h < 2; ++h) {
      const int live = std::clamp(rows - 16 * h, 0, 16);
      const Fp8Half half = Fp8HalfOf(w, a + 16 * h);
      for (int64_t g = 0; g < groups; ++g) {
        const float s = live > 0 ? half.Scale(g, g / per_block) : 0.0f;
        float* sg = tile.s + g * kTileRows8 + 16 * h;
        for (int i = 0; i < 16; ++i) sg[i] = i < live ? s : 0.0f;
      }
    }
  }
  vnni ? CorrectionSums(tile, w.cols) : CorrectionSumsTwin(tile, w.cols);
}

// ---- The stored tiles' own kernel: below 64 tokens ----

void DecodeStoredTwin(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qbias, int64_t n, float* y,
                      int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols, groups = cols / 32;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t a = w.row_offset + r, i = a % kTileRows8;
    const int8_t* tile = TileOf(w, a);
    for (int64_t t = 0; t < n; ++t) {
      float acc = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        // sum (w + 128) q - 128 sum q, as the VNNI kernel forms it: sum w q.
        int32_t isum = qbias[t * groups + g];
        for (int64_t k = 32 * g; k < 32 * g + 32; ++k) isum += (Level(tile, i, k) + 128) * q[t * cols + k];
        const float sd = GroupScale(w, a, g) * dg[t * groups + g];
        acc = std::fma(static_cast<float>(isum), sd, acc);
      }
      y[t * y_stride + r] = acc;
    }
  }
}

namespace {
// The scales of 16-row halves, group by group: FP8, one value per half
// (exponent times block scale; the column block advances every
// block_cols / 32 groups, no division in the loop); Q8_0, 16 f16 values.
template <bool kQ8, int kHalves>
class HalfScales {
 public:
  DSV3_VNNI_TARGET HalfScales(const MatRef& w, const int8_t* tile, int64_t a, int h0) {
    for (int h = 0; h < kHalves; ++h) {
      q8_[h] = Q8_0Scales(w, tile) + 16 * (h0 + h);
      if constexpr (!kQ8) fp8_[h] = Fp8HalfOf(w, a + 16 * h);
    }
    per_block_ = kQ8 ? 1 : w.block_cols / 32;
  }
  DSV3_VNNI_TARGET __m512 Get(int h, int64_t g) const {
    if constexpr (kQ8) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8_[h] + g * kTileRows8)));
    } else {
      return _mm512_set1_ps(fp8_[h].Scale(g, cb_));  // = GroupScale(w, a + 16 h, g)
    }
  }
  void Next() {
    if (++in_block_ == per_block_) in_block_ = 0, ++cb_;
  }

 private:
  const uint16_t* q8_[kHalves];
  Fp8Half fp8_[kHalves];
  int64_t per_block_ = 1, cb_ = 0, in_block_ = 0;
};

// FP8, one token: the factors of the tile's halves from absolute row a,
// sd [kHalves, groups] = group scale times the token's d_g, from srowg
// [groups] (each group's block scale in this tile's block row). The same
// products as Fp8Half::Scale times d_g (2^(E - 13) is exact), vectorised once
// per tile: formed per group inside the streaming loop they cost one core
// a few percent of its DRAM speed (BM_ExpertTilesDram/1, one thread,
// five alternations: 35.8 -> 36.9 GB/s). With 2-7 tokens they did not pay.
template <int kHalves>
DSV3_VNNI_TARGET void TileHalfScales(const MatRef& w, int64_t a, const float* srowg, const float* dg, float* sd) {
  const int64_t groups = w.cols / 32;
  for (int h = 0; h < kHalves; ++h) {
    const uint8_t* exps = w.tile_exp + ((a + 16 * h) / 16) * groups;
    for (int64_t g = 0; g < groups; g += 16) {
      const __mmask16 m = static_cast<__mmask16>(groups - g >= 16 ? 0xFFFF : (1u << (groups - g)) - 1);
      __m512i e = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, exps + g));
      e = _mm512_max_epi32(e, _mm512_set1_epi32(1));  // Fp8Step: E = max(field, 1)
      const __m512 step = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(127 - 13)), 23));
      __m512 s = _mm512_mul_ps(step, _mm512_maskz_loadu_ps(m, srowg + g));
      s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, dg + g));
      _mm512_mask_storeu_ps(sd + h * groups + g, m, s);
    }
  }
}

// FP8, one token: the factors of a run of whole tiles are formed first and
// the run is then streamed in one loop, so nothing but two stores separates
// one tile's loads from the next's. Formed at each tile (reading its
// exponents and scales, and the calls around them) they paused the stream
// often enough to cost one core about 5% of its DRAM speed against a bare
// loop over the same bytes. A run is kOneTokenRun bytes of weights, whose
// factors take 1/128 of that (32 KiB) and stay in L1/L2.
constexpr int64_t kOneTokenRun = int64_t{4} << 20;
int64_t OneTokenRunTiles(int64_t cols) { return std::max<int64_t>(1, kOneTokenRun / (kTileRows8 * cols)); }

// `tiles` whole tiles from absolute row a (a multiple of 32): y [32 tiles]
// from q [cols], qbias [groups] and sd [tiles, 2, groups], TileHalfScales'
// factors of each tile. The same steps in the same order as DecodeHalves.
DSV3_VNNI_TARGET void OneTokenTiles(const MatRef& w, int64_t a, int64_t tiles, const int8_t* q, const int32_t* qbias,
                                    const float* sd, float* y) {
  const int64_t groups = w.cols / 32;
  const int8_t* p = TileOf(w, a);  // tiles follow each other: one stream of groups
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t t = 0; t < tiles; ++t, sd += 2 * groups, y += kTileRows8) {
    __m512 f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g, p += 8 * 128) {
      __m512i acc0 = _mm512_set1_epi32(qbias[g]), acc1 = acc0;
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        int32_t word;
        std::memcpy(&word, q + 32 * g + 4 * s, 4);
        const __m512i b = _mm512_set1_epi32(word);
        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_xor_si512(_mm512_load_si512(p + s * 128), flip), b);
        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_xor_si512(_mm512_load_si512(p + s * 128 + 64), flip), b);
      }
      f0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc0), _mm512_set1_ps(sd[g]), f0);
      f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc1), _mm512_set1_ps(sd[groups + g]), f1);
    }
    _mm512_storeu_ps(y, f0);
    _mm512_storeu_ps(y + 16, f1);
  }
}

// FP8: each group's block scale in the block row of the tile in hand,
// srowg [groups], refilled when a tile enters a new block row (every 4 tiles
// at 128-row blocks).
class BlockRowScales {
 public:
  BlockRowScales(const MatRef& w, float* srowg) : w_(w), srowg_(srowg) {}
  void Follow(int64_t a) {
    if (a / w_.block_rows == block_) return;
    block_ = a / w_.block_rows;
    const float* srow = w_.scale_inv + block_ * w_.scale_cols;
    const int64_t groups = w_.cols / 32, per_block = w_.block_cols / 32;
    for (int64_t g = 0; g < groups; g += per_block)
      std::fill_n(srowg_ + g, std::min(per_block, groups - g), srow[g / per_block]);
  }
  const float* Get() const { return srowg_; }

 private:
  const MatRef& w_;
  float* srowg_;
  int64_t block_ = -1;
};

// FP8, one token: up to `whole` whole tiles from absolute row a (a multiple
// of 32), at most a run; their factors into sd [tiles, 2, groups], then the
// products into y [32 tiles]. Returns the rows done.
DSV3_VNNI_TARGET int64_t OneTokenRun(const MatRef& w, int64_t a, int64_t whole, const int8_t* q, const float* dg,
                                     const int32_t* qbias, BlockRowScales& srowg, float* sd, float* y) {
  const int64_t tiles = std::min(whole, OneTokenRunTiles(w.cols)), groups = w.cols / 32;
  for (int64_t t = 0; t < tiles; ++t) {
    srowg.Follow(a + t * kTileRows8);
    TileHalfScales<2>(w, a + t * kTileRows8, srowg.Get(), dg, sd + t * 2 * groups);
  }
  OneTokenTiles(w, a, tiles, q, qbias, sd, y);
  return tiles * kTileRows8;
}

// 2-7 tokens prefetch this far ahead: nearer than the block kernels'
// kDecodePrefetch (one core from DRAM, BM_ExpertTilesDram/2 and /3: 12 KiB
// 34.6 / 33.0 GB/s, 8 KiB 36.0 / 35.1, 4 KiB 35.7 / 35.2, 2 KiB 34.2 / 33.1).
constexpr int64_t kStoredPrefetch = 4096;

// With several passes over a tile (8+ tokens) the next tile is fetched
// while this one is multiplied: its `lines` 64-byte lines from p, spread
// evenly over the `slots` (pass, group) steps of all passes, this pass's
// first being slot0. Fetching only ahead of the first pass left the memory
// idle during the others (16 tokens from DRAM, one core: 15.3 -> 17.9 GB/s).
struct NextTile {
  const uint8_t* p = nullptr;
  int64_t lines = 0, slot0 = 0, slots = 1;
};

// T tokens against kHalves 16-row halves of one tile, from half h0 (absolute
// row a); `live` rows of output are stored from y (row a's column). With
// kScaled (FP8 from 8 tokens), sd [groups, 2, n16] holds each half's scale
// times each token's d_t (from this block's first token), so a group's
// float step is one conversion and one FMA with a broadcast operand per
// token and half (16 tokens: 495 -> 550 GOP/s); otherwise the product is
// formed here (Q8_0's scales are per row; below 8 tokens filling sd per
// tile cost more than it saved: 1 token 344 -> 220 GOP/s).
template <int T, int kHalves, bool kQ8, bool kScaled>
DSV3_VNNI_TARGET void DecodeHalves(const MatRef& w, int64_t a, int h0, int live, const int8_t* q, const float* dg,
                                   const int32_t* qbias, const float* sd, int64_t n16, float* y, int64_t y_stride,
                                   const uint8_t* end, const NextTile& next) {
  // FP8, one token (here only a half at a range's end; whole tiles go through
  // OneTokenTiles): sd holds TileHalfScales' factors [kHalves, groups].
  constexpr bool kTileFactors = !kScaled && !kQ8 && T == 1;
  // end == nullptr: no prefetching ahead (one token, or several passes).
  const int64_t cols = w.cols, groups = cols / 32;
  const int8_t* tile = TileOf(w, a);
  const int8_t* half = tile + 64 * h0;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  HalfScales<kQ8, kHalves> scales(w, tile, a, h0);
  __m512 f[T][kHalves];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < kHalves; ++h) f[t][h] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* wg = half + g * 8 * 128;
    const uint8_t* ahead = reinterpret_cast<const uint8_t*>(wg) + kStoredPrefetch;
    const bool fetch = end && ahead < end;
    if (next.p)
      for (int64_t l = next.lines * (next.slot0 + g) / next.slots, l1 = next.lines * (next.slot0 + g + 1) / next.slots;
           l < l1; ++l)
        PrefetchLine(next.p + 64 * l);
    __m512i acc[T][kHalves];
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < kHalves; ++h) acc[t][h] = _mm512_set1_epi32(qbias[t * groups + g]);
    // Unrolled, the accumulators stay in their registers: as a loop GCC copied
    // them from register to register every step and kept f on the stack (16
    // tokens in cache 538 -> 606 GOP/s, BM_MatMulFp8Tiles/16).
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      __m512i wv[kHalves];
      // One prefetch before each load: sixteen in a row per group streamed a
      // quarter slower from DRAM.
      for (int h = 0; h < kHalves; ++h) {
        if (fetch) PrefetchLine(ahead + s * 128 + 64 * h);
        wv[h] = _mm512_xor_si512(_mm512_load_si512(wg + s * 128 + 64 * h), flip);
      }
      if (fetch && kHalves == 1) PrefetchLine(ahead + s * 128 + 64);
      for (int t = 0; t < T; ++t) {
        int32_t word;
        std::memcpy(&word, q + t * cols + 32 * g + 4 * s, 4);
        const __m512i b = _mm512_set1_epi32(word);
        for (int h = 0; h < kHalves; ++h) acc[t][h] = _mm512_dpbusd_epi32(acc[t][h], wv[h], b);
      }
    }
    for (int h = 0; h < kHalves; ++h) {
      if constexpr (kTileFactors) {
        f[0][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[0][h]), _mm512_set1_ps(sd[h * groups + g]), f[0][h]);
      } else if constexpr (!kScaled) {
        const __m512 s = scales.Get(h, g);
        for (int t = 0; t < T; ++t) {
          const __m512 sdv = _mm512_mul_ps(s, _mm512_set1_ps(dg[t * groups + g]));
          f[t][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][h]), sdv, f[t][h]);
        }
      } else {
        const float* sdh = sd + (g * 2 + h) * n16;
        for (int t = 0; t < T; ++t)
          f[t][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][h]), _mm512_set1_ps(sdh[t]), f[t][h]);
      }
    }
    if constexpr (!kScaled && !kTileFactors) scales.Next();
  }
  for (int h = 0; h < kHalves; ++h) {
    const int rows = std::clamp(live - 16 * h, 0, 16);
    const __mmask16 m = static_cast<__mmask16>(rows == 16 ? 0xFFFF : (1u << rows) - 1);
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * y_stride + 16 * h, m, f[t][h]);
  }
}

// FP8: sd [groups, 2, n16] = the scale of each of the tile's halves from h0
// times d_t of every token (dgt [groups, n16], zero past n): one product per
// tile, half, group and 16 tokens instead of one per token in every pass.
template <int kHalves>
DSV3_VNNI_TARGET void ScaleTimesActs(const MatRef& w, int64_t a, int h0, const float* dgt, int64_t n16, float* sd) {
  HalfScales<false, kHalves> scales(w, TileOf(w, a), a, h0);
  for (int64_t g = 0; g < w.cols / 32; ++g) {
    for (int h = 0; h < kHalves; ++h) {
      const __m512 s = scales.Get(h, g);
      for (int64_t t = 0; t < n16; t += 16)
        _mm512_store_ps(sd + (g * 2 + h) * n16 + t, _mm512_mul_ps(s, _mm512_load_ps(dgt + g * n16 + t)));
    }
    scales.Next();
  }
}

// The tokens in blocks of up to 7 (8+: 6) against one tile's halves. One
// pass (2-7 tokens) prefetches kStoredPrefetch ahead; several passes fetch
// the next tile, spread over them (NextTile); one token does neither.
template <int kHalves, bool kQ8, bool kScaled>
DSV3_VNNI_TARGET void TokenBlocks(const MatRef& w, int64_t a, int h0, int live, const int8_t* q, const float* dg,
                                  const int32_t* qbias, const float* sd, int64_t n16, int64_t n, float* y,
                                  int64_t y_stride, const uint8_t* end) {
  const int64_t cols = w.cols, groups = cols / 32, block = n <= 7 ? n : 6, passes = (n + block - 1) / block;
  NextTile next;
  if (passes > 1) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(TileOf(w, a + kTileRows8));
    const int64_t tile_bytes = kTileRows8 * static_cast<int64_t>(DTypeBytes(w.dtype, cols));
    if (p < end) next.p = p, next.lines = std::min<int64_t>(tile_bytes, end - p) / 64;
    next.slots = passes * groups;
  }
  for (int64_t t0 = 0; t0 < n; t0 += block) {
    next.slot0 = t0 / block * groups;
    const int8_t* qt = q + t0 * cols;
    const float* dt = dg + t0 * groups;
    const int32_t* bt = qbias + t0 * groups;
    const float* st = sd + t0;
    float* yt = y + t0 * y_stride;
    // One token: no prefetches. Its loads come fast enough for the hardware
    // prefetchers on huge pages, and the prefetches only took request slots
    // (one core from DRAM 36.8 -> 38.4 GB/s, bench-moe FP8 --int8-fp8 decode
    // at one thread 50.6 -> 53.4 tok/s); with 2-7 tokens they pay.
    const uint8_t* e = passes == 1 && n > 1 ? end : nullptr;
    switch (std::min(block, n - t0)) {
      case 1: DecodeHalves<1, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
      case 2: DecodeHalves<2, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
      case 3: DecodeHalves<3, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
      case 4: DecodeHalves<4, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
      case 5: DecodeHalves<5, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
      case 6: DecodeHalves<6, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
      default: DecodeHalves<7, kHalves, kQ8, kScaled>(w, a, h0, live, qt, dt, bt, st, n16, yt, y_stride, e, next); break;
    }
  }
}

// Rows [r0, r1): whole tiles two halves at a time, a half where the range
// starts or ends inside a tile; every token block over a tile before the next.
// FP8 with one token: whole tiles in runs (OneTokenRun).
template <bool kQ8, bool kScaled>
DSV3_VNNI_TARGET void DecodeRows(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qbias, int64_t n,
                                 float* y, int64_t y_stride, int64_t r0, int64_t r1, float* work) {
  const int64_t a1 = w.row_offset + r1, groups = w.cols / 32, n16 = (n + 15) / 16 * 16;
  const uint8_t* end = reinterpret_cast<const uint8_t*>(TileOf(w, a1 + kTileRows8 - 1));
  float* dgt = work;               // [groups, n16]
  float* sd = dgt + groups * n16;  // [groups, 2, n16]
  if constexpr (kScaled)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t t = 0; t < n16; ++t) dgt[g * n16 + t] = t < n ? dg[t * groups + g] : 0.0f;
  const bool tile_scales = !kQ8 && !kScaled && n == 1;  // FP8, one token
  BlockRowScales srowg(w, work);  // [groups], then sd [run tiles, 2, groups]: where dgt lies for 8+ tokens
  if (tile_scales) sd = work + (groups + 15) / 16 * 16;
  for (int64_t r = r0; r < r1;) {
    const int64_t a = w.row_offset + r;
    const int h = static_cast<int>(a / 16 % 2), live = static_cast<int>(std::min<int64_t>(kTileRows8, r1 - r));
    if (tile_scales && a % kTileRows8 == 0 && live == kTileRows8) {
      r += OneTokenRun(w, a, (r1 - r) / kTileRows8, q, dg, qbias, srowg, sd, y + r);
      continue;
    }
    if (tile_scales) srowg.Follow(a);
    if (h == 0 && live > 16) {
      if constexpr (kScaled) ScaleTimesActs<2>(w, a, 0, dgt, n16, sd);
      if (tile_scales) TileHalfScales<2>(w, a, srowg.Get(), dg, sd);
      TokenBlocks<2, kQ8, kScaled>(w, a, 0, live, q, dg, qbias, sd, n16, n, y + r, y_stride, end);
      r += kTileRows8;
    } else {
      if constexpr (kScaled) ScaleTimesActs<1>(w, a, h, dgt, n16, sd);
      if (tile_scales) TileHalfScales<1>(w, a, srowg.Get(), dg, sd);
      TokenBlocks<1, kQ8, kScaled>(w, a, h, std::min(live, 16), q, dg, qbias, sd, n16, n, y + r, y_stride, end);
      r += 16;
    }
  }
}
}  // namespace

int64_t DecodeStoredWorkFloats(int64_t cols, int64_t n) {
  const int64_t groups = cols / 32;
  if (n == 1) return (groups + 15) / 16 * 16 + OneTokenRunTiles(cols) * 2 * groups + 16;  // srowg, a run's sd
  return 3 * groups * ((n + 15) / 16 * 16) + 16;
}

void DecodeStoredVnni(const MatRef& w, const int8_t* q, const float* dg, const int32_t* qbias, int64_t n, float* y,
                      int64_t y_stride, int64_t r0, int64_t r1, float* work) {
  // 64-byte aligned: the products are stored with aligned vector stores.
  float* p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(work) + 63) & ~uintptr_t{63});
  if (w.dtype == DType::kQ8_0T32) return DecodeRows<true, false>(w, q, dg, qbias, n, y, y_stride, r0, r1, p);
  if (n >= 8) return DecodeRows<false, true>(w, q, dg, qbias, n, y, y_stride, r0, r1, p);
  DecodeRows<false, false>(w, q, dg, qbias, n, y, y_stride, r0, r1, p);
}

}  // namespace dsv3::cpu
