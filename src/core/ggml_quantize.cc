// Encoders of the ggml block types with the arithmetic of ggml's reference
// quantizers (quantize_row_*_ref), so files dsv3 writes hold the bytes
// llama.cpp's tools would write. The K-quants pick per-sub-block scales (and
// mins) by a small search minimising a weighted error, quantize those scales
// to 4, 6 or 8 bits under one f16 super-block scale, then re-derive every
// level from the stored scales. Compiled with -ffp-contract=off: each product
// and sum is rounded as in ggml's C.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/ggml_quantize_common.h"
#include "core/ggml_quants.h"

namespace dsv3 {

namespace {

using ggml_encode::kGroupMaxEps;
using ggml_encode::NearestInt;
using ggml_encode::StoreHalf;

// The element of largest magnitude (first on ties) and that magnitude.
float SignedMax(const float* x, int n, float* amax) {
  float m = 0.0f;
  *amax = 0.0f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > *amax) *amax = std::fabs(x[i]), m = x[i];
  return m;
}

// ---- 32-element types ----

void Q4_0(const float* x, uint8_t* b) {
  float amax;
  const float max = SignedMax(x, 32, &amax);
  const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(d, b);
  for (int j = 0; j < 16; ++j) {
    const int lo = std::min(15, static_cast<int>(x[j] * id + 8.5f));
    const int hi = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
    b[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

void MinMax(const float* x, int n, float* min, float* max) {
  *min = FLT_MAX, *max = -FLT_MAX;
  for (int i = 0; i < n; ++i) *min = std::min(*min, x[i]), *max = std::max(*max, x[i]);
}

void Q4_1(const float* x, uint8_t* b) {
  float min, max;
  MinMax(x, 32, &min, &max);
  const float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(d, b);
  StoreHalf(min, b + 2);
  for (int j = 0; j < 16; ++j) {
    const int lo = std::min(15, static_cast<int>((x[j] - min) * id + 0.5f));
    const int hi = std::min(15, static_cast<int>((x[j + 16] - min) * id + 0.5f));
    b[4 + j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

// Packs 32 five-bit levels as Q5_0/Q5_1 store them.
void PackQ5(const int* l, uint8_t* qh, uint8_t* qs) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((l[j] & 0xF) | ((l[j + 16] & 0xF) << 4));
    h |= ((static_cast<uint32_t>(l[j]) & 0x10u) >> 4) << j;
    h |= ((static_cast<uint32_t>(l[j + 16]) & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh, &h, 4);
}

void Q5_0(const float* x, uint8_t* b) {
  float amax;
  const float max = SignedMax(x, 32, &amax);
  const float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(d, b);
  int l[32];
  for (int j = 0; j < 32; ++j) l[j] = std::min(31, static_cast<int>(x[j] * id + 16.5f));
  PackQ5(l, b + 2, b + 6);
}

void Q5_1(const float* x, uint8_t* b) {
  float min, max;
  MinMax(x, 32, &min, &max);
  const float d = (max - min) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(d, b);
  StoreHalf(min, b + 2);
  int l[32];
  for (int j = 0; j < 32; ++j) l[j] = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
  PackQ5(l, b + 4, b + 8);
}

void Q8_0(const float* x, uint8_t* b) { EncodeQ8_0(x, 32, b); }

// ---- IQ4_NL / IQ4_XS ----

// Index of the level nearest v (the lower one on ties), levels ascending.
int NearestLevel(float v) {
  const int8_t* val = kIq4NlValues;
  if (v <= val[0]) return 0;
  if (v >= val[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (v < val[mid] ? hi : lo) = mid;
  }
  return v - val[hi - 1] < val[hi] - v ? hi - 1 : hi;
}

// Weighted least-squares scale of 32 values for the levels their nearest
// indices under `id` give: sums into *sqx, *sq2; indices into L if non-null.
void Iq4Sums(const float* x, const float* w, float id, uint8_t* L, float* sqx, float* sq2) {
  *sqx = 0.0f, *sq2 = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const int l = NearestLevel(id * x[j]);
    if (L) L[j] = static_cast<uint8_t>(l);
    const float q = kIq4NlValues[l];
    *sqx += w[j] * q * x[j];
    *sq2 += w[j] * q * q;
  }
}

// The scale of one 32-block (0 for an all-zero block, whose L is left as is);
// `ntry` extra scale candidates each side, as ggml's quantize_row_iq4_nl_impl.
float Iq4BlockScale(const float* x, int ntry, uint8_t* L) {
  float w[32], amax;
  for (int j = 0; j < 32; ++j) w[j] = x[j] * x[j];
  const float max = SignedMax(x, 32, &amax);
  if (amax < kGroupMaxEps) return 0.0f;
  const float v0 = kIq4NlValues[0];
  float d = ntry > 0 ? -max / v0 : max / v0;
  float sqx, sq2;
  Iq4Sums(x, w, 1.0f / d, L, &sqx, &sq2);
  d = sq2 > 0.0f ? sqx / sq2 : 0.0f;
  float best = d * sqx;
  for (int t = -ntry; t <= ntry; ++t) {
    Iq4Sums(x, w, static_cast<float>(t + kIq4NlValues[0]) / max, nullptr, &sqx, &sq2);
    if (sq2 > 0.0f && sqx * sqx > best * sq2) d = sqx / sq2, best = d * sqx;
  }
  return d;
}

void PackNibbles32(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(L[j] | (L[16 + j] << 4));
}

// Reference: `L` carries over between blocks of a row, as in ggml (an
// all-zero block keeps the previous block's indices; its scale is 0).
// Quantizer: after the scale search the indices are taken again under the
// chosen scale (all-zero blocks included, whose indices become those of 0).
void IQ4_NL(const float* x, uint8_t* b, uint8_t* L, QuantizeMode mode) {
  const bool search = mode == QuantizeMode::kQuantizer;
  const float d = Iq4BlockScale(x, search ? 7 : -1, L);
  if (search) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) L[j] = static_cast<uint8_t>(NearestLevel(id * x[j]));
  }
  StoreHalf(d, b);
  PackNibbles32(L, b + 2);
}

void IQ4_XS(const float* x, uint8_t* b) {
  uint8_t L[256] = {};
  float scales[8], max_scale = 0.0f, amax_scale = 0.0f;
  for (int ib = 0; ib < 8; ++ib) {
    scales[ib] = Iq4BlockScale(x + 32 * ib, 7, L + 32 * ib);
    if (std::fabs(scales[ib]) > amax_scale) amax_scale = std::fabs(scales[ib]), max_scale = scales[ib];
  }
  const float d = -max_scale / 32.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(d, b);
  uint16_t sh = 0;
  std::memset(b + 4, 0, 4);
  for (int ib = 0; ib < 8; ++ib) {
    const int l = std::clamp(NearestInt(id * scales[ib]), -32, 31);
    const float dl = d * static_cast<float>(l), idl = dl != 0.0f ? 1.0f / dl : 0.0f;
    for (int j = 0; j < 32; ++j) L[32 * ib + j] = static_cast<uint8_t>(NearestLevel(idl * x[32 * ib + j]));
    const int u = l + 32;
    b[4 + ib / 2] |= static_cast<uint8_t>((u & 0xF) << (4 * (ib % 2)));
    sh = static_cast<uint16_t>(sh | ((u >> 4) << (2 * ib)));
  }
  std::memcpy(b + 2, &sh, 2);
  for (int i = 0; i < 8; ++i) PackNibbles32(L + 32 * i, b + 8 + 16 * i);
}

}  // namespace

// K-quants (ggml_quantize_k.cc).
void QuantizeQ2K(const float* x, uint8_t* b);
void QuantizeQ3K(const float* x, uint8_t* b);
void QuantizeQ45K(const float* x, uint8_t* b, bool five);
void QuantizeQ6K(const float* x, uint8_t* b);

void QuantizeBlocks(DType t, const float* x, int64_t n, uint8_t* blocks, QuantizeMode mode) {
  const int64_t be = DTypeBlockElems(t), bb = DTypeBlockBytes(t);
  uint8_t carry[32] = {};  // IQ4_NL's indices carried between blocks
  for (int64_t i = 0; i < n / be; ++i, x += be, blocks += bb) {
    std::memset(blocks, 0, bb);
    switch (t) {
      case DType::kQ4_0: Q4_0(x, blocks); break;
      case DType::kQ4_1: Q4_1(x, blocks); break;
      case DType::kQ5_0: Q5_0(x, blocks); break;
      case DType::kQ5_1: Q5_1(x, blocks); break;
      case DType::kQ8_0: Q8_0(x, blocks); break;
      case DType::kQ2_K: QuantizeQ2K(x, blocks); break;
      case DType::kQ3_K: QuantizeQ3K(x, blocks); break;
      case DType::kQ4_K: QuantizeQ45K(x, blocks, false); break;
      case DType::kQ5_K: QuantizeQ45K(x, blocks, true); break;
      case DType::kQ6_K: QuantizeQ6K(x, blocks); break;
      case DType::kIQ4_NL: IQ4_NL(x, blocks, carry, mode); break;
      case DType::kIQ4_XS: IQ4_XS(x, blocks); break;
      default: break;  // not a block type: callers never pass one
    }
  }
}

}  // namespace dsv3
