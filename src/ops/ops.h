// The op API the model calls. Every op works on float32 activations; weights
// arrive in their stored format (ops/weight.h). Shapes are given in the
// comments as [rows, cols] with rows = tokens. Which kernel runs (a SIMD
// kernel from cpu/, dispatched to the CPU's best target, or the scalar
// reference below) and how the work is split over threads is decided here,
// never in model/. The scalar twins in namespace ref define the numerics.
#pragma once

#include <cstdint>
#include <span>

#include "ops/weight.h"

namespace dsv3::ops {

// How matrix products may trade precision for speed. The default keeps
// float32 activations (the golden-test bound); bf16_activations rounds
// activations to bf16 so BF16/FP8 weights can use VDPBF16PS (own bound).
struct MatMulOptions {
  bool bf16_activations = false;
  // GGUF block-type weights (issue 16): from 8 tokens on, activations are
  // quantized per 32 values to int8 and the products are VNNI integer dot
  // products (docs/quantization.md gives the bound); true keeps float32
  // activations, the exact path.
  bool exact_block_activations = false;
  // FP8 e4m3 weights (issue 18): from 8 tokens on, the weights are taken as
  // int8 levels (a power-of-two step per 16 rows x 32 columns) and the
  // activations as int8 per 32 values, multiplied with VNNI; a reduced-
  // precision mode with its own bound (docs/performance.md).
  bool int8_fp8 = false;
};

// y [n, w.rows] = x [n, w.cols] * w^T. Rows of x and y are `x_stride` /
// `y_stride` floats apart.
void MatMul(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n,
            const MatMulOptions& options = {});
inline void MatMul(const Weight& w, const float* x, float* y, int64_t n, const MatMulOptions& options = {}) {
  MatMul(w, x, w.cols, y, w.rows, n, options);
}
// Whether products with w run on int8 activations (VNNI) under these options.
bool UsesInt8Products(const Weight& w, const MatMulOptions& options);

// Independent products run in one parallel pass (experts, heads): the rows
// of all jobs are split over the threads by estimated cost.
struct MatMulJob {
  const Weight* w = nullptr;
  const float* x = nullptr;
  int64_t x_stride = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  int64_t n = 0;
};
void MatMulBatch(std::span<const MatMulJob> jobs, const MatMulOptions& options = {});

// SwiGLU's first half, fused: y [n, rows] = silu(gate x) * (up x); `tmp`
// has y's layout and receives up x on the way.
struct GateUpJob {
  const Weight* gate = nullptr;
  const Weight* up = nullptr;
  const float* x = nullptr;
  int64_t x_stride = 0;
  float* y = nullptr;
  float* tmp = nullptr;
  int64_t y_stride = 0;
  int64_t n = 0;
};
void GateUpSiluBatch(std::span<const GateUpJob> jobs, const MatMulOptions& options = {});

// y [n, w.cols] = x [n, w.rows] * w  (the transpose product).
void MatMulTransposed(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n);

// out [w.cols] = row r of w, dequantized.
void DecodeRow(const Weight& w, int64_t r, float* out);

// Weights kept as int8 tiles from load: FP8 under --int8-fp8 (DType::kI8T32,
// issue 18), Q8_0 under --repack (DType::kQ8_0T32, issue 16). Whether w can
// be, the bytes its tiles take (rows padded to 32) and an FP8 matrix's
// exponents (one per 16 rows x 32 columns), and the packing into dst (64-byte
// aligned; an FP8 matrix's own bytes when rows % 32 == 0), threaded. The
// packed weight keeps w's block scales.
bool CanStoreTiles(const Weight& w);
int64_t StoredTilesBytes(const Weight& w);
int64_t StoredTilesExpBytes(const Weight& w);
Weight StoreTiles(const Weight& w, uint8_t* dst, uint8_t* exps);

// out [n, d] = x / sqrt(mean(x^2) + eps) * weight, in float32. out may alias x.
void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out,
             int64_t out_stride, int64_t n, int64_t d);

// gate [n, d] = silu(gate) * up.
void SiluMul(float* gate, const float* up, int64_t n, int64_t d);

// Rotates adjacent pairs (x[2i], x[2i+1]) of x [dim] by angle i: cos/sin [dim/2].
void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim);

// In-place softmax over x [n]; sums in float32.
void Softmax(float* x, int64_t n);

float Dot(const float* a, const float* b, int64_t n);
// y += a * x
void Axpy(float a, const float* x, float* y, int64_t n);
// y [n] += x [n]
void Add(const float* x, float* y, int64_t n);

// out[i] = e4m3(x[i] / scale): nearest even, saturating to +-448.
void EncodeF8E4M3(const float* x, int64_t n, float scale, uint8_t* out);
float AbsMax(const float* x, int64_t n);

// ---- Absorbed MLA attention over a latent cache ----

// The cache rows of one slot and layer: row j holds [rc + dr] values, as
// float32 or as e4m3 with two scales per row (latent part, rotary part).
struct LatentRowsView {
  const float* f32 = nullptr;
  const uint8_t* f8 = nullptr;
  const float* f8_scale = nullptr;  // [rows, 2]
  int64_t stride = 0;               // elements between rows
};

// `count` consecutive batch tokens from `first`, of one slot, at positions
// p0, p0+1, ...; each attends rows 0..its position of `rows`.
struct AttentionBlock {
  int64_t first = 0, count = 0, p0 = 0;
  LatentRowsView rows;
};

// o [N, H, rc] for the tokens of `blocks` from q [N, H, rc+dr]:
// softmax_j(scale * q . row_j) weighted sum of row_j[0..rc).
void MlaAttention(int64_t rc, int64_t dr, float scale, int64_t heads, const float* q,
                  std::span<const AttentionBlock> blocks, float* o);

// ---- Decompressed MLA attention (K/V expanded per head), for prefill ----

// DeepSeek's "naive" form: context rows are expanded by kv_b_proj into k_nope
// and v per head, chunk by chunk, and attention runs per head over dn + dr
// key and dv value dimensions. Cheaper than the absorbed form when a block
// of many query tokens shares its context (prefill); see Model::Attention.
struct MhaShape {
  int64_t heads = 0, rc = 0, dn = 0, dr = 0, dv = 0;
  float scale = 1.0f;
};
// Context rows expanded per call: bounds the kv buffer whatever the context.
inline constexpr int64_t kMhaChunk = 256;
// Caller-owned buffers (Model::Workspace), so the token loop does not allocate.
struct MhaBuffers {
  float* lat = nullptr;  // [kMhaChunk, rc+dr] cache rows as float32
  float* kv = nullptr;   // [kMhaChunk, H*(dn+dv)] the chunk's k_nope, v per head
  float* mx = nullptr;   // [n, H] running max of the scores
  float* sum = nullptr;  // [n, H] running sum of exp(score - max)
};
// o [n, H*dv] for n tokens at positions p0 .. p0+n-1 of one slot whose cache
// rows 0 .. p0+n-1 are `rows`: q [n, H, dn+dr] (q_pe already RoPE'd),
// kv_b [H*(dn+dv), rc] (kv_b_proj, multiplied with `mm` like other linears).
void MhaAttention(const Weight& kv_b, const MatMulOptions& mm, const MhaShape& s, const float* q, int64_t n,
                  int64_t p0, const LatentRowsView& rows, const MhaBuffers& buf, float* o);

// ---- The machine, for benchmarks ----

const char* KernelTarget();  // the SIMD target the kernels dispatch to
bool HasVdpbf16ps();         // AVX512_BF16 present (bf16-activation path)
// Best-of-`reps` read bandwidth (bytes/s) with `threads` threads over `bytes`.
double MeasureReadBandwidth(int threads, int64_t bytes, int reps);
double MeasureFmaPeak(int threads);  // float32 FLOP/s

// ---- Scalar reference twins: the numerics every kernel is checked against ----
namespace ref {
void MatMul(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n);
// As MatMul with every activation first rounded to bf16 (round to nearest even).
void MatMulBf16Activations(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                           int64_t n);
void MatMulTransposed(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n);
void GateUpSilu(const GateUpJob& job);
void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out, int64_t out_stride,
             int64_t n, int64_t d);
void SiluMul(float* gate, const float* up, int64_t n, int64_t d);
void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim);
void Softmax(float* x, int64_t n);
float Dot(const float* a, const float* b, int64_t n);
void Axpy(float a, const float* x, float* y, int64_t n);
// One token, heads [h0, h1): full softmax over rows 0..pos (no streaming).
void MlaAttention(int64_t rc, int64_t dr, float scale, const float* q, int64_t h0, int64_t h1, int64_t pos,
                  const LatentRowsView& rows, float* o);
// As ops::MhaAttention: every context row expanded at once, full softmax.
void MhaAttention(const Weight& kv_b, const MhaShape& s, const float* q, int64_t n, int64_t p0,
                  const LatentRowsView& rows, float* o);
// Dequantized value of element k of cache row j.
float LatentValue(const LatentRowsView& rows, int64_t j, int64_t k, int64_t rc);
}  // namespace ref

}  // namespace dsv3::ops
