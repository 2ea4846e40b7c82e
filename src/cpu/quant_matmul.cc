// Matrix products over the ggml block types (Q4_0 .. IQ4_XS, core/ggml_quants.h)
// with float32 activations. Every block is first unpacked into integer
// levels (one int8 per weight, plain loops the compiler vectorises for each
// Highway target) plus one float scale and optional float offset per group of
// 16 or 32 weights; a weight is then level * scale (+ offset), exactly the
// float ggml's dequantize_row_* gives (this file is compiled without FP
// contraction, and the level->float steps are separate Mul and Add).
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
#include "cpu/kernels.h"

#ifndef DSV3_CPU_QUANT_MATMUL_ONCE
#define DSV3_CPU_QUANT_MATMUL_ONCE
namespace dsv3::cpu {
// One block unpacked: weight i of group g (size `group`) is
// level[i] * scale[g] (+ offset[g] when has_offset).
struct Unpacked {
  alignas(64) int8_t level[256];
  float scale[16];
  float offset[16];
  int group = 32;
  bool has_offset = false;
};
constexpr int64_t kPrefillTokens = 8;  // from this many tokens: dequantized tiles + float GEMM
constexpr int64_t kTileRows = 16;
}  // namespace dsv3::cpu
#endif

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes, so one vector never spans two 16-weight groups.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;

// ---- Unpacking, one function per type ----

void Nibbles(const uint8_t* qs, int8_t* L, int bias) {  // 16 bytes -> 32 levels
  for (int j = 0; j < 16; ++j) {
    L[j] = static_cast<int8_t>((qs[j] & 0xF) - bias);
    L[j + 16] = static_cast<int8_t>((qs[j] >> 4) - bias);
  }
}

void UnpackQ4_0(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = false, u.scale[0] = LoadHalf(b);
  Nibbles(b + 2, u.level, 8);
}
void UnpackQ4_1(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = true, u.scale[0] = LoadHalf(b), u.offset[0] = LoadHalf(b + 2);
  Nibbles(b + 4, u.level, 0);
}
void Fifth(const uint8_t* qh, int8_t* L) {  // adds Q5_0/Q5_1's fifth bits
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int j = 0; j < 32; ++j) L[j] = static_cast<int8_t>(L[j] | (((h >> j) & 1) << 4));
}
void UnpackQ5_0(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = false, u.scale[0] = LoadHalf(b);
  Nibbles(b + 6, u.level, 0);
  Fifth(b + 2, u.level);
  for (int j = 0; j < 32; ++j) u.level[j] = static_cast<int8_t>(u.level[j] - 16);
}
void UnpackQ5_1(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = true, u.scale[0] = LoadHalf(b), u.offset[0] = LoadHalf(b + 2);
  Nibbles(b + 8, u.level, 0);
  Fifth(b + 4, u.level);
}
void UnpackQ8_0(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = false, u.scale[0] = LoadHalf(b);
  std::memcpy(u.level, b + 2, 32);
}
void Iq4Levels(const uint8_t* qs, int8_t* L) {
  for (int j = 0; j < 16; ++j) L[j] = kIq4NlValues[qs[j] & 0xF], L[j + 16] = kIq4NlValues[qs[j] >> 4];
}
void UnpackIQ4_NL(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = false, u.scale[0] = LoadHalf(b);
  Iq4Levels(b + 2, u.level);
}
void UnpackIQ4_XS(const uint8_t* b, Unpacked& u) {
  u.group = 32, u.has_offset = false;
  const float d = LoadHalf(b);
  for (int ib = 0; ib < 8; ++ib) {
    u.scale[ib] = d * static_cast<float>(Iq4XsScale(b, ib));
    Iq4Levels(b + 8 + 16 * ib, u.level + 32 * ib);
  }
}
// Group 8h + 2s + k of Q2_K/Q3_K: bits 2s of qs[32h + 16k + l].
void TwoBit(const uint8_t* qs, int8_t* L) {
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int k = 0; k < 2; ++k)
        for (int l = 0; l < 16; ++l)
          L[128 * h + 32 * s + 16 * k + l] = static_cast<int8_t>((qs[32 * h + 16 * k + l] >> (2 * s)) & 3);
}
void UnpackQ2_K(const uint8_t* b, Unpacked& u) {
  u.group = 16, u.has_offset = true;
  const float d = LoadHalf(b + 80), dmin = LoadHalf(b + 82);
  for (int g = 0; g < 16; ++g) {
    u.scale[g] = d * static_cast<float>(b[g] & 0xF);
    u.offset[g] = -(dmin * static_cast<float>(b[g] >> 4));  // a + (-m) is a - m exactly
  }
  TwoBit(b + 16, u.level);
}
void UnpackQ3_K(const uint8_t* b, Unpacked& u) {
  u.group = 16, u.has_offset = false;
  const float d = LoadHalf(b + 108);
  int8_t sc[16];
  Q3KScales(b + 96, sc);
  for (int g = 0; g < 16; ++g) u.scale[g] = d * static_cast<float>(sc[g]);
  TwoBit(b + 32, u.level);
  for (int i = 0; i < 256; ++i)  // element i's high bit: hmask[i % 32] bit i / 32
    u.level[i] = static_cast<int8_t>(u.level[i] - (((b[i % 32] >> (i / 32)) & 1) ? 0 : 4));
}
void UnpackQ45_K(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, Unpacked& u) {
  u.group = 32, u.has_offset = true;
  const float d = LoadHalf(b), dmin = LoadHalf(b + 2);
  for (int g = 0; g < 8; ++g) {
    uint8_t sc, m;
    KScaleMin(g, b + 4, &sc, &m);
    u.scale[g] = d * static_cast<float>(sc);
    u.offset[g] = -(dmin * static_cast<float>(m));
  }
  // Group 2g + k: nibble k of the 32 bytes qs[32g ..], fifth bit qh bit 2g + k.
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) {
      u.level[64 * g + l] = static_cast<int8_t>(qs[32 * g + l] & 0xF);
      u.level[64 * g + 32 + l] = static_cast<int8_t>(qs[32 * g + l] >> 4);
    }
  if (!qh) return;
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l) {
      u.level[64 * g + l] = static_cast<int8_t>(u.level[64 * g + l] | (((qh[l] >> (2 * g)) & 1) << 4));
      u.level[64 * g + 32 + l] = static_cast<int8_t>(u.level[64 * g + 32 + l] | (((qh[l] >> (2 * g + 1)) & 1) << 4));
    }
}
void UnpackQ4_K(const uint8_t* b, Unpacked& u) { UnpackQ45_K(b, nullptr, b + 16, u); }
void UnpackQ5_K(const uint8_t* b, Unpacked& u) { UnpackQ45_K(b, b + 16, b + 48, u); }
void UnpackQ6_K(const uint8_t* b, Unpacked& u) {
  u.group = 16, u.has_offset = false;
  const float d = LoadHalf(b + 208);
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int g = 0; g < 16; ++g) u.scale[g] = d * static_cast<float>(sc[g]);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b + 64 * h;
    const uint8_t* qh = b + 128 + 32 * h;
    int8_t* L = u.level + 128 * h;
    for (int l = 0; l < 32; ++l) {
      L[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      L[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      L[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      L[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

using UnpackFn = void (*)(const uint8_t*, Unpacked&);

UnpackFn UnpackerOf(DType t) {
  switch (t) {
    case DType::kQ4_0: return UnpackQ4_0;
    case DType::kQ4_1: return UnpackQ4_1;
    case DType::kQ5_0: return UnpackQ5_0;
    case DType::kQ5_1: return UnpackQ5_1;
    case DType::kQ8_0: return UnpackQ8_0;
    case DType::kQ2_K: return UnpackQ2_K;
    case DType::kQ3_K: return UnpackQ3_K;
    case DType::kQ4_K: return UnpackQ4_K;
    case DType::kQ5_K: return UnpackQ5_K;
    case DType::kQ6_K: return UnpackQ6_K;
    case DType::kIQ4_NL: return UnpackIQ4_NL;
    case DType::kIQ4_XS: return UnpackIQ4_XS;
    default: return nullptr;
  }
}

// ---- Weights in registers ----

// Calls fn(i, w) for the weights [i, i + N) of an unpacked block of `n`.
template <class Fn>
HWY_INLINE void ForEachVector(const Unpacked& u, int n, const Fn& fn) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::RebindToSigned<DF> di;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int g = 0; g < n / u.group; ++g) {
    const VF scale = hn::Set(df, u.scale[g]);
    const VF offset = hn::Set(df, u.has_offset ? u.offset[g] : 0.0f);
    for (int i = g * u.group; i < (g + 1) * u.group; i += N) {
      VF w = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, u.level + i))), scale);
      if (u.has_offset) w = hn::Add(w, offset);  // no offset: no +0 (it would turn -0 into +0)
      fn(i, w);
    }
  }
}

void DequantizeRowsImpl(DType t, const uint8_t* blocks, int64_t n, float* out) {
  const UnpackFn unpack = UnpackerOf(t);
  const int be = static_cast<int>(DTypeBlockElems(t));
  const int64_t bb = DTypeBlockBytes(t);
  if (!unpack) return;
  const DF df;
  Unpacked u;
  for (int64_t b = 0; b < n / be; ++b) {
    unpack(blocks + b * bb, u);
    float* o = out + b * be;
    ForEachVector(u, be, [&](int i, VF w) { hn::StoreU(w, df, o + i); });
  }
}

// y[t * y_stride + r] for rows [r0, r1) and T tokens: each block unpacked
// once, its weights multiplied into all T tokens' sums. Two accumulators
// per token alternate to halve the FMA dependency chains.
template <int T>
void DotRows(const MatRef& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t r0,
             int64_t r1) {
  const DF df;
  const UnpackFn unpack = UnpackerOf(w.dtype);
  const int be = static_cast<int>(DTypeBlockElems(w.dtype));
  const int64_t bb = DTypeBlockBytes(w.dtype), nb = w.cols / be, row_bytes = nb * bb;
  const int N = static_cast<int>(hn::Lanes(df));
  Unpacked u;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * row_bytes;
    VF acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = hn::Zero(df);
    for (int64_t b = 0; b < nb; ++b) {
      unpack(row + b * bb, u);
      const float* xb = x + b * be;
      ForEachVector(u, be, [&](int i, VF wv) {
        const int s = (i / N) & 1;
        for (int t = 0; t < T; ++t) acc[t][s] = hn::MulAdd(wv, hn::LoadU(df, xb + t * x_stride + i), acc[t][s]);
      });
    }
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc[t][0], acc[t][1])));
  }
}

using DotFn = void (*)(const MatRef&, const float*, int64_t, float*, int64_t, int64_t, int64_t);

template <size_t... Ts>
constexpr std::array<DotFn, sizeof...(Ts)> DotTable(std::index_sequence<Ts...>) {
  return {DotRows<static_cast<int>(Ts) + 1>...};
}

// Decode: n < kPrefillTokens tokens, in groups of up to 4.
void QuantDotRowsImpl(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                      int64_t r0, int64_t r1) {
  static constexpr auto kTable = DotTable(std::make_index_sequence<4>());
  if (!UnpackerOf(w.dtype) || r0 >= r1) return;
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    const int64_t T = std::min<int64_t>(4, n - t0);
    kTable[T - 1](w, x + t0 * x_stride, x_stride, y + t0 * y_stride, y_stride, r0, r1);
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
}  // namespace

int64_t QuantMatMulScratchFloats(const MatRef& w, int64_t n) {
  if (n < kPrefillTokens) return 0;
  return kTileRows * w.cols + 16 + MatMulScratchFloats(FloatTile(w, kTileRows, nullptr), n);
}

void QuantMatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                     int64_t r0, int64_t r1, float* scratch) {
  if (n <= 0 || r0 >= r1) return;
  if (n < kPrefillTokens) return HWY_DYNAMIC_DISPATCH(QuantDotRowsImpl)(w, x, x_stride, n, y, y_stride, r0, r1);
  // Prefill: 16 rows at a time dequantized (tile [16, cols], 64-byte aligned
  // rows as the float kernel reads them), then the float GEMM over all tokens.
  float* tile = scratch;
  float* gemm_scratch = scratch + kTileRows * w.cols + 16;
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(w.dtype, w.cols));
  for (int64_t a = r0; a < r1; a += kTileRows) {
    const int64_t rows = std::min(kTileRows, r1 - a);
    for (int64_t r = 0; r < rows; ++r)
      DequantizeRows(w.dtype, static_cast<const uint8_t*>(w.data) + (a + r) * row_bytes, w.cols, tile + r * w.cols);
    MatMulRows(FloatTile(w, rows, tile), x, x_stride, n, y + a, y_stride, 0, rows, gemm_scratch);
  }
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
