// SIMD kernels behind the op API (ops/ops.h), written with Google Highway
// and dispatched at run time to the best target of the CPU (AVX2, AVX-512,
// ...): one dispatch per call, never per element. Every kernel has a scalar
// twin in ops/ (ops::ref) that defines its numerics; tests/cpu_kernels_test
// compares them on every compiled target. Kernels here are serial: callers
// split the work (output rows, heads, tokens) over threads.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsv3::cpu {

// A weight matrix in its stored format; the same fields as ops::Weight,
// which this layer cannot see. FP8 rows carry a block-scale grid indexed by
// absolute row (row_offset + r) and column.
struct MatRef {
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  const float* scale_inv = nullptr;
  int64_t scale_cols = 0, block_rows = 128, block_cols = 128, row_offset = 0;
  const uint8_t* tile_exp = nullptr;  // kI8T32: [rows / 16, cols / 32] by absolute row
};

// The name of the Highway target the kernels dispatch to ("AVX3", "AVX2").
const char* TargetName();

// ---- Int8 tiles stored at load (quant_stored_tiles.cc): FP8 under
// --int8-fp8 (kI8T32, issue 18), Q8_0 under --repack (kQ8_0T32, issue 16) ----

// A whole matrix (row_offset 0) that can be stored as tiles: Q8_0, or FP8
// whose 32-column groups each lie in one block-scale column and whose block
// rows are a multiple of 32.
bool StoredTilesSupport(const MatRef& w);
DType StoredTilesType(DType t);  // kI8T32 for FP8, kQ8_0T32 for Q8_0
inline int64_t StoredTiles(int64_t rows) { return (rows + 31) / 32; }
// Bytes of the tiles (rows padded to 32; with a Q8_0 tile's scales) and of
// an FP8 matrix's exponents ([tiles * 2, cols / 32]; 0 for Q8_0).
int64_t StoredTilesBytes(const MatRef& w);
int64_t StoredTilesExpBytes(const MatRef& w);
inline int64_t PackStoredTilesScratchFloats(int64_t cols) { return 20 * cols + 64; }
// Tiles [t0, t1) of w into dst (64-byte aligned; FP8 may pack into its own
// bytes when rows % 32 == 0) and exps: the levels and steps the per-call
// preparation would make from the same rows.
void PackStoredTiles(const MatRef& w, int64_t t0, int64_t t1, uint8_t* dst, uint8_t* exps, float* scratch);
// Row r (any) of a stored-tile view as floats: level * group scale.
void DequantizeStoredTileRow(const MatRef& w, int64_t r, float* out);

// ---- Matrix products (matmul.cc) ----

// True when the SIMD matmul handles `dtype` (F32, BF16, F16, F8_E4M3).
bool MatMulSupports(DType dtype);
// Floats of scratch one MatMulRows / GateUpSiluRows call needs for n tokens.
int64_t MatMulScratchFloats(const MatRef& w, int64_t n);

// y[t * y_stride + r] = sum_k W[r, k] * x[t * x_stride + k] for rows r in
// [r0, r1) and tokens t in [0, n). Weights are decoded in registers; the
// activations stay float32 and the sums are float32.
void MatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                int64_t r0, int64_t r1, float* scratch);

// Fused SwiGLU input stage for rows [r0, r1): y = silu(gate x) * (up x), both
// [n, rows] with row stride y_stride; `tmp` (same layout) holds up x on the way.
void GateUpSiluRows(const MatRef& gate, const MatRef& up, const float* x, int64_t x_stride, int64_t n, float* y,
                    float* tmp, int64_t y_stride, int64_t r0, int64_t r1, float* scratch);

// ---- GGUF block types: Q4_0 .. IQ4_XS (quant_matmul.cc, issue 16) ----

// The float32 values of n weights (n a multiple of the block): the SIMD twin
// of core's DequantizeBlocks, equal to it bit for bit.
void DequantizeRows(DType dtype, const uint8_t* blocks, int64_t n, float* out);
// MatMulRows for block-type weights (MatMulRows forwards them here): fused
// dequantize-dot for few tokens, dequantized row tiles + the float GEMM for many.
int64_t QuantMatMulScratchFloats(const MatRef& w, int64_t n);
void QuantMatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                     int64_t r0, int64_t r1, float* scratch);

// ---- GGUF block types with int8 activations (quant_int8.cc, issue 16) ----

// True when the CPU has AVX512-VNNI (VPDPBUSD) with BW and VL.
bool HasAvx512Vnni();
// As QuantMatMulRows, but from 8 tokens on each token's activations are
// first quantized per 32 values to int8 (ggml's Q8_0 rule) and the products
// are integer (VNNI, or with use_vnni = false its scalar twin, which gives
// the same bits). Fewer tokens: 256-weight blocks (Q2_K..Q6_K, IQ4_XS) take
// an int8 decode kernel on VNNI CPUs, other types (or use_vnni = false)
// QuantMatMulRows' float decode kernel.
int64_t QuantInt8ScratchFloats(const MatRef& w, int64_t n);
void QuantInt8MatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                         int64_t r0, int64_t r1, float* scratch, bool use_vnni = true);

// ---- Reduced precision: BF16 activations (matmul_bf16.cc) ----

// True when the CPU has AVX512_BF16 (VDPBF16PS); the BF16-activation matmul
// then uses it, else its Highway twin with the same rounding of activations.
bool HasAvx512Bf16();
// As MatMulRows, but each activation is rounded to bf16 (round to nearest
// even) before the products; weights must be BF16 or F8_E4M3 (both exact in
// bf16). Products and sums stay float32. `use_vdpbf16ps` = false forces the
// Highway twin (tests).
bool MatMulBf16Supports(DType dtype);
int64_t MatMulBf16ScratchFloats(const MatRef& w, int64_t n);
void MatMulBf16Rows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                    int64_t r0, int64_t r1, float* scratch, bool use_vdpbf16ps = true);

// ---- Element-wise kernels (elementwise.cc) ----

float Dot(const float* a, const float* b, int64_t n);
void Axpy(float a, const float* x, float* y, int64_t n);  // y += a x
void Add(const float* x, float* y, int64_t n);             // y += x
// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, rows of d floats.
void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out, int64_t out_stride,
             int64_t n, int64_t d);
void SiluMul(float* gate, const float* up, int64_t n);  // gate = silu(gate) * up
// Rotates pairs (x[2i], x[2i+1]) by angle i: cos/sin [dim/2].
void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim);
void Softmax(float* x, int64_t n);

// ---- FP8 encoding (quantize.cc) ----

float AbsMax(const float* x, int64_t n);  // max |x|, 0 for n = 0
// out[i] = e4m3(x[i] / scale), as F32ToF8E4M3 (nearest even, saturating).
void EncodeF8E4M3(const float* x, int64_t n, float scale, uint8_t* out);

// ---- Latent attention (attention.cc) ----

// The cache rows one slot and layer holds: row j is [rc + dr] values, either
// float32 (`f32`) or e4m3 bytes (`f8`) times a per-row scale.
struct LatentRows {
  const float* f32 = nullptr;
  const uint8_t* f8 = nullptr;
  const float* f8_scale = nullptr;  // [rows]
  int64_t stride = 0;               // elements between rows
};

// Absorbed MLA attention for `m` query tokens at positions p0 .. p0+m-1 of
// one slot and heads [h0, h1): token i, head h attends cache rows 0..p0+i,
// scores = scale * q[i, h] . row_j (all rc + dr values), a streaming
// (flash-style) softmax over blocks of rows, and o[i, h] = sum_j a_j c_j
// (first rc values). q [m, H, rc+dr] with token stride q_stride (floats),
// o [m, H, rc] with token stride o_stride.
struct MlaShape {
  int64_t rc = 0, dr = 0;
  float scale = 1.0f;
};
int64_t MlaScratchFloats(const MlaShape& s, int64_t m, int64_t heads);
void MlaAttention(const MlaShape& s, const float* q, int64_t q_stride, int64_t m, int64_t p0, int64_t h0,
                  int64_t h1, const LatentRows& rows, float* o, int64_t o_stride, float* scratch);

// ---- Decompressed (per-head K/V) attention, for prefill (attention_mha.cc) ----

// One chunk of keys, rows j0 .. j0+jn-1 of the context, expanded per head:
// kv [jn, H, dn+dv] (k_nope then v of each head) with rows kv_stride apart,
// and the shared rotary key k_pe [jn, dr] with rows pe_stride apart.
struct MhaShape {
  int64_t heads = 0, dn = 0, dr = 0, dv = 0;
  float scale = 1.0f;
};
struct MhaKeys {
  const float* kv = nullptr;
  int64_t kv_stride = 0;
  const float* k_pe = nullptr;
  int64_t pe_stride = 0;
  int64_t j0 = 0, jn = 0;
};
// Floats of scratch MhaAttendChunk needs for a chunk of jn keys.
int64_t MhaScratchFloats(const MhaShape& s, int64_t jn);
// Head h of `m` queries at positions p0 .. p0+m-1 (p0 >= keys.j0) against
// the keys of the chunk in their causal windows, one streaming-softmax step:
// q [m, H, dn+dr] (RoPE'd q_pe last; token stride q_stride), running max and
// sum [m, H], o [m, H, dv] the unnormalised output (token stride o_stride).
// Start with max -inf, sum 0, o 0; divide o by sum after the last chunk.
void MhaAttendChunk(const MhaShape& s, int64_t h, const float* q, int64_t q_stride, int64_t m, int64_t p0,
                    const MhaKeys& keys, float* mx, float* sum, float* o, int64_t o_stride, float* scratch);
// out [jn, rc+dr] = cache rows j0 .. j0+jn-1 as float32.
void DecodeLatentRows(const LatentRows& rows, int64_t rc, int64_t dr, int64_t j0, int64_t jn, float* out);

// ---- Machine limits (measure.cc), for the benchmarks ----

// Best-of-`reps` read bandwidth in bytes/s over a `bytes` buffer with
// `threads` threads (each reads its own contiguous part).
double MeasureReadBandwidth(int threads, int64_t bytes, int reps);
// Peak float32 FMA throughput in FLOP/s with `threads` threads.
double MeasureFmaPeak(int threads);
// Peak VDPBF16PS throughput (FLOP/s: 2 per bf16 product) and VPDPBUSD
// throughput (ops/s: 2 per int8 product) with `threads` threads; 0 without
// the instruction (measure_dot.cc).
double MeasureBf16DotPeak(int threads);
double MeasureInt8DotPeak(int threads);
// The best of 3 runs of `loop(iters, sink)` (returns the ops it did) on
// `threads` threads at once, in ops/s: how every peak above is taken.
double BestPeakOf3(int threads, int64_t iters, double (*loop)(int64_t, float*));

}  // namespace dsv3::cpu
