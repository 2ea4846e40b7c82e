// The int8 tile of the 8+-token products (quant_int8.cc): 32 rows of
// weights as signed levels interleaved for VPDPBUSD, their per-group scales,
// offsets and correction sums, how each weight format fills it (block types
// through a row-major staging copy, Q8_0 and FP8 e4m3 straight from their
// rows), and the tile times the tokens' int8 activations, each with its scalar
// twin. Internal to src/cpu.
#pragma once

#include <cstdint>

#include "cpu/kernels.h"

// The AVX-512 features the VNNI kernels use; a function that names its own
// target replaces (clang) or extends (GCC) the translation unit's.
#define DSV3_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define DSV3_VBMI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

namespace dsv3::cpu {

// The decode kernels (1..7 tokens: quant_int8.cc, quant_q4k_r4.cc,
// quant_decode32.cc) fetch this far ahead within their rows: one core's
// hardware prefetchers leave DRAM latency exposed (bench-moe Q4_K decode,
// one thread: 57.8 -> 69.3 tok/s; 12-16 KiB measured best, 2-4 KiB gave a
// few percent).
constexpr int64_t kDecodePrefetch = 12288;
// A prefetch into L1 that stays where it is written. GCC gathers the
// __builtin_prefetch calls of an unrolled loop at its top; the stored tiles'
// few-token kernel streamed from DRAM faster with them spread between its
// loads (one core, BM_ExpertTilesDram: two tokens 33.6 -> 34.8 GB/s, three
// 31.0 -> 34.6).
inline void PrefetchLine(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 (%0)" : : "r"(p));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}
// Prefetches the `bytes` that lie kDecodePrefetch after p, if before `end`
// (the call's last row: what lies past it belongs to another thread or none).
inline void PrefetchAhead(const uint8_t* p, int64_t bytes, const uint8_t* end) {
  const uint8_t* ahead = p + kDecodePrefetch;
  if (ahead < end)
    for (int64_t l = 0; l < bytes; l += 64) __builtin_prefetch(ahead + l, 0, 3);
}

constexpr int kTileRows8 = 32;
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
  // FP8 only, when set: each group's exponent field E, [2][cols / 32] (per
  // 16-row half), for the tiles kept at load (quant_stored_tiles.h).
  uint8_t* big = nullptr;
  // The next tile's packed rows (contiguous): prefetched into L2 while this
  // tile's products run, so preparing it does not wait on memory.
  const uint8_t* next = nullptr;
  int64_t next_bytes = 0;
};

// Per token and weight group: dg = d_t, qdg = float(sum q) * d_t ([n, cols / group]).
struct GroupFactors {
  const float* dg = nullptr;
  const float* qdg = nullptr;
  int64_t groups = 0, tokens = 0;
};


// An FP8 group's level step 2^(E - 13) for its largest exponent field
// (E = max(field, 1)); times the block scale it is the group's scale.
inline float Fp8Step(int big) {
  return static_cast<float>(1.0 / 8192) * static_cast<float>(1 << (big > 1 ? big : 1));
}

// True with AVX512-VBMI too (VPERMI2B: the FP8 level tables).
bool HasAvx512Vbmi();
// FP8 matrices whose groups of 32 columns each lie in one block-scale column.
bool Fp8Int8Supports(const MatRef& w);

// Filling the tile. Block types: PrepareInt8TileImpl (quant_int8.cc) writes
// rm, s and z, then InterleaveVnni (or its twin) makes w and c.
void InterleaveTwin(Int8Tile& tile, int64_t cols);
DSV3_VNNI_TARGET void InterleaveVnni(Int8Tile& tile, int64_t cols);
// c = -128 * the sum of each group's levels, from the interleaved w.
void CorrectionSumsTwin(Int8Tile& tile, int64_t cols);
DSV3_VNNI_TARGET void CorrectionSums(Int8Tile& tile, int64_t cols);
// Q8_0 rows [0, rows) of `data` (row_bytes apart) straight into w, s and c.
DSV3_VNNI_TARGET void PrepareQ8_0Vnni(const uint8_t* data, int64_t row_bytes, int rows, int64_t cols, Int8Tile& tile);
// Q5_0 the same way (VBMI).
DSV3_VBMI_TARGET void PrepareQ5_0Vnni(const uint8_t* data, int64_t row_bytes, int rows, int64_t cols, Int8Tile& tile);
// FP8 rows [r0, r0 + rows) of w as levels: the twin into rm (then
// InterleaveTwin or InterleaveVnni), the VBMI version straight into w and c.
void PrepareFp8Twin(const MatRef& w, int64_t r0, int rows, Int8Tile& tile);
DSV3_VBMI_TARGET void PrepareFp8Vnni(const MatRef& w, int64_t r0, int rows, Int8Tile& tile);

// y[t * y_stride + r] for the tile's rows and tokens [0, n); u = q + 128 per
// activation ([n, cols]). Both give the same bits.
void TileGemmTwin(const Int8Tile& tile, const uint8_t* u, int64_t n, int64_t cols, const GroupFactors& f, float* y,
                  int64_t y_stride);
void TileGemmVnni(const Int8Tile& tile, const uint8_t* u, int64_t n, int64_t cols, const GroupFactors& f, float* y,
                  int64_t y_stride);

}  // namespace dsv3::cpu
