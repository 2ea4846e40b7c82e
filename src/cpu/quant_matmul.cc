// Matrix products over the ggml block types (Q4_0 .. IQ4_XS, core/ggml_quants.h)
// with float32 activations. Every block is unpacked by its kind
// (quant_unpack-inl.h) into int8 levels and per-group float scales and
// offsets; a weight is then level * scale (+ offset), exactly the float
// ggml's dequantize_row_* gives (this file is compiled without FP
// contraction, and the level->float steps are separate Mul and Add). Each
// type has its own kernel instance (group size, offset, unpacking known at
// compile time).
//
// Decode (few tokens): each block is unpacked once and its weights, built in
// registers, are multiplied into every token's accumulators (fused
// dequantize-dot; the packed blocks are the only weight bytes read).
// Prefill (many tokens): tiles of rows are dequantized to float32 and handed
// to the float GEMM of matmul.cc, whose register tile reuses each weight for
// many tokens. DequantizeRows (the same unpack-and-scale code storing floats)
// is tested bit for bit against core's DequantizeBlocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/quant_matmul.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "core/ggml_quants.h"
#include "core/q4k_r4.h"
#include "cpu/kernels.h"

#ifndef DSV3_CPU_QUANT_MATMUL_ONCE
#define DSV3_CPU_QUANT_MATMUL_ONCE
namespace dsv3::cpu {
constexpr int64_t kPrefillTokens = 8;  // from this many tokens: dequantized tiles + float GEMM
constexpr int64_t kTileRows = 16;
}  // namespace dsv3::cpu
#endif
#include "cpu/quant_unpack-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class K>
void DequantizeKind(const uint8_t* blocks, int64_t n, float* out) {
  const DF df;
  Levels u;
  for (int64_t b = 0; b < n / K::kElems; ++b) {
    const int8_t* level = K::Unpack(blocks + b * DTypeBlockBytes(K::kType), u);
    float* o = out + b * K::kElems;
    ForEachVector<K>(level, u, [&](int i, VF w) { hn::StoreU(w, df, o + i); });
  }
}

// y[t * y_stride + r] for rows [r0, r1) and T tokens: each block unpacked
// once, its weights multiplied into all T tokens' sums. Two accumulators
// per token alternate to halve the FMA dependency chains.
template <class K, int T>
void DotRows(const MatRef& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t r0,
             int64_t r1) {
  const DF df;
  constexpr int64_t bb = DTypeBlockBytes(K::kType);
  constexpr int N = static_cast<int>(hn::MaxLanes(DF()));
  const int64_t nb = w.cols / K::kElems, row_bytes = nb * bb;
  Levels u;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * row_bytes;
    VF acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = hn::Zero(df);
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* level = K::Unpack(row + b * bb, u);
      const float* xb = x + b * K::kElems;
      ForEachVector<K>(level, u, [&](int i, VF wv) {
        const int s = (i / N) & 1;
        for (int t = 0; t < T; ++t) acc[t][s] = hn::MulAdd(wv, hn::LoadU(df, xb + t * x_stride + i), acc[t][s]);
      });
    }
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc[t][0], acc[t][1])));
  }
}

using DotFn = void (*)(const MatRef&, const float*, int64_t, float*, int64_t, int64_t, int64_t);
using DequantFn = void (*)(const uint8_t*, int64_t, float*);
struct KindFns {
  DequantFn dequantize = nullptr;
  DotFn dot[4] = {};
};

template <class K>
KindFns FnsOf() {
  return {DequantizeKind<K>, {DotRows<K, 1>, DotRows<K, 2>, DotRows<K, 3>, DotRows<K, 4>}};
}

const KindFns& KindOf(DType t) {
  static const KindFns kNone{}, kQ4_0 = FnsOf<KQ4_0>(), kQ4_1 = FnsOf<KQ4_1>(), kQ5_0 = FnsOf<KQ5_0>(),
                        kQ5_1 = FnsOf<KQ5_1>(), kQ8_0 = FnsOf<KQ8_0>(), kQ2_K = FnsOf<KQ2_K>(),
                        kQ3_K = FnsOf<KQ3_K>(), kQ4_K = FnsOf<KQ4_K>(), kQ5_K = FnsOf<KQ5_K>(),
                        kQ6_K = FnsOf<KQ6_K>(), kIQ4_NL = FnsOf<KIQ4_NL>(), kIQ4_XS = FnsOf<KIQ4_XS>();
  switch (t) {
    case DType::kQ4_0: return kQ4_0;
    case DType::kQ4_1: return kQ4_1;
    case DType::kQ5_0: return kQ5_0;
    case DType::kQ5_1: return kQ5_1;
    case DType::kQ8_0: return kQ8_0;
    case DType::kQ2_K: return kQ2_K;
    case DType::kQ3_K: return kQ3_K;
    case DType::kQ4_K: return kQ4_K;
    case DType::kQ5_K: return kQ5_K;
    case DType::kQ6_K: return kQ6_K;
    case DType::kIQ4_NL: return kIQ4_NL;
    case DType::kIQ4_XS: return kIQ4_XS;
    default: return kNone;
  }
}

void DequantizeRowsImpl(DType t, const uint8_t* blocks, int64_t n, float* out) {
  if (const DequantFn f = KindOf(t).dequantize) f(blocks, n, out);
}

// Decode: n < kPrefillTokens tokens, in groups of up to 4.
void QuantDotRowsImpl(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                      int64_t r0, int64_t r1) {
  const KindFns& k = KindOf(w.dtype);
  if (!k.dequantize || r0 >= r1) return;
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    const int64_t T = std::min<int64_t>(4, n - t0);
    k.dot[T - 1](w, x + t0 * x_stride, x_stride, y + t0 * y_stride, y_stride, r0, r1);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(DequantizeRowsImpl);
HWY_EXPORT(QuantDotRowsImpl);

void DequantizeRows(DType t, const uint8_t* blocks, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(DequantizeRowsImpl)(t, blocks, n, out);
}

namespace {
MatRef FloatTile(const MatRef& w, int64_t rows, const float* data) {
  MatRef f;
  f.dtype = DType::kF32, f.rows = rows, f.cols = w.cols, f.data = data;
  return f;
}

// --repack's interleaved Q4_K goes through the float tile for any n: the
// row is first put back into Q4_K bytes (staging).
// So do tiles stored at load in a view cut off their tile grid.
bool TileOnly(const MatRef& w) {
  return w.dtype == DType::kQ4_KR4 || w.dtype == DType::kI8T32 || w.dtype == DType::kQ8_0T32;
}
int64_t StagingFloats(const MatRef& w) {
  return TileOnly(w) ? static_cast<int64_t>(DTypeBytes(w.dtype, w.cols)) / 4 + 16 : 0;
}
void DequantizeMatrixRow(const MatRef& w, int64_t r, uint8_t* staging, float* out) {
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  const uint8_t* data = static_cast<const uint8_t*>(w.data);
  if (!TileOnly(w)) return DequantizeRows(w.dtype, data + r * row_bytes, w.cols, out);
  if (w.dtype != DType::kQ4_KR4) return DequantizeStoredTileRow(w, r, out);
  UnpackQ4KR4MatrixRow(data, row_bytes, r, w.cols, staging);
  DequantizeRows(DType::kQ4_K, staging, w.cols, out);
}
}  // namespace

int64_t QuantMatMulScratchFloats(const MatRef& w, int64_t n) {
  if (n < kPrefillTokens && !TileOnly(w)) return 0;
  return kTileRows * w.cols + 16 + StagingFloats(w) + MatMulScratchFloats(FloatTile(w, kTileRows, nullptr), n);
}

void QuantMatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                     int64_t r0, int64_t r1, float* scratch) {
  if (n <= 0 || r0 >= r1) return;
  if (n < kPrefillTokens && !TileOnly(w))
    return HWY_DYNAMIC_DISPATCH(QuantDotRowsImpl)(w, x, x_stride, n, y, y_stride, r0, r1);
  // Prefill: 16 rows at a time dequantized (tile [16, cols], 64-byte aligned
  // rows as the float kernel reads them), then the float GEMM over all tokens.
  float* tile = scratch;
  uint8_t* staging = reinterpret_cast<uint8_t*>(scratch + kTileRows * w.cols + 16);
  float* gemm_scratch = scratch + kTileRows * w.cols + 16 + StagingFloats(w);
  for (int64_t a = r0; a < r1; a += kTileRows) {
    const int64_t rows = std::min(kTileRows, r1 - a);
    for (int64_t r = 0; r < rows; ++r) DequantizeMatrixRow(w, a + r, staging, tile + r * w.cols);
    MatMulRows(FloatTile(w, rows, tile), x, x_stride, n, y + a, y_stride, 0, rows, gemm_scratch);
  }
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
