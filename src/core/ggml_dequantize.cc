// Scalar decoders of the ggml block types (core/ggml_quants.h). Each writes
// one block's values in ggml's element order with ggml's arithmetic: a float
// scale times the integer level, then (for the types with a min) minus or
// plus the float offset, each operation rounded on its own (this file is
// compiled with -ffp-contract=off).
#include "core/ggml_quants.h"

namespace dsv3 {

namespace {

void Q4_0(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}

void Q4_1(const uint8_t* b, float* y) {
  const float d = LoadHalf(b), m = LoadHalf(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(b[4 + j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
  }
}

// 5-bit levels of a Q5_0/Q5_1 block: qh at `qh`, nibbles at `qs`.
void Q5Levels(const uint8_t* qh, const uint8_t* qs, int* l) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int j = 0; j < 16; ++j) {
    l[j] = (qs[j] & 0xF) | static_cast<int>(((h >> j) << 4) & 0x10);
    l[j + 16] = (qs[j] >> 4) | static_cast<int>((h >> (j + 12)) & 0x10);
  }
}

void Q5_0(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  int l[32];
  Q5Levels(b + 2, b + 6, l);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(l[j] - 16) * d;
}

void Q5_1(const uint8_t* b, float* y) {
  const float d = LoadHalf(b), m = LoadHalf(b + 2);
  int l[32];
  Q5Levels(b + 4, b + 8, l);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(l[j]) * d + m;
}

void Q8_0(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// Elements 128*h + 32*s + 16*k + l (h half, s shift step, k 0/1) take bits
// 2s of qs[32h + 16k + l] and scale byte 8h + 2s + k.
void Q2_K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b + 80), dmin = LoadHalf(b + 82);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int k = 0; k < 2; ++k) {
        const uint8_t sc = b[8 * h + 2 * s + k];
        const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
        const uint8_t* q = b + 16 + 32 * h + 16 * k;
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l] >> (2 * s)) & 3) - ml;
      }
}

void Q3_K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b + 108);
  int8_t sc[16];
  Q3KScales(b + 96, sc);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int k = 0; k < 2; ++k) {
        const float dl = d * static_cast<float>(sc[8 * h + 2 * s + k]);
        const uint8_t* q = b + 32 + 32 * h + 16 * k;
        const uint8_t* hm = b + 16 * k;
        const uint8_t bit = static_cast<uint8_t>(1u << (4 * h + s));
        for (int l = 0; l < 16; ++l) {
          const int v = ((q[l] >> (2 * s)) & 3) - ((hm[l] & bit) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
}

// Q4_K and Q5_K: 4 groups of 64, each two sub-blocks of 32 (low then high
// nibbles of the same 32 bytes), with an optional fifth bit from qh.
void Q45_K(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = LoadHalf(b), dmin = LoadHalf(b + 2);
  for (int g = 0; g < 4; ++g, qs += 32)
    for (int k = 0; k < 2; ++k) {
      uint8_t sc, m;
      KScaleMin(2 * g + k, b + 4, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      const uint8_t bit = static_cast<uint8_t>(1u << (2 * g + k));
      for (int l = 0; l < 32; ++l) {
        int v = k == 0 ? (qs[l] & 0xF) : (qs[l] >> 4);
        if (qh && (qh[l] & bit)) v += 16;
        *y++ = d1 * static_cast<float>(v) - m1;
      }
    }
}

void Q6_K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b + 208);
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int h = 0; h < 2; ++h, y += 128) {
    const uint8_t* ql = b + 64 * h;
    const uint8_t* qh = b + 128 + 32 * h;
    for (int l = 0; l < 32; ++l) {
      const int is = 8 * h + l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

void Iq4Nibbles(float dl, const uint8_t* qs, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j] = dl * static_cast<float>(kIq4NlValues[qs[j] & 0xF]);
    y[j + 16] = dl * static_cast<float>(kIq4NlValues[qs[j] >> 4]);
  }
}

void IQ4_NL(const uint8_t* b, float* y) { Iq4Nibbles(LoadHalf(b), b + 2, y); }

void IQ4_XS(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  for (int ib = 0; ib < 8; ++ib) Iq4Nibbles(d * static_cast<float>(Iq4XsScale(b, ib)), b + 8 + 16 * ib, y + 32 * ib);
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn DecoderOf(DType t) {
  switch (t) {
    case DType::kQ4_0: return Q4_0;
    case DType::kQ4_1: return Q4_1;
    case DType::kQ5_0: return Q5_0;
    case DType::kQ5_1: return Q5_1;
    case DType::kQ8_0: return Q8_0;
    case DType::kQ2_K: return Q2_K;
    case DType::kQ3_K: return Q3_K;
    case DType::kQ4_K: return [](const uint8_t* b, float* y) { Q45_K(b, nullptr, b + 16, y); };
    case DType::kQ5_K: return [](const uint8_t* b, float* y) { Q45_K(b, b + 16, b + 48, y); };
    case DType::kQ6_K: return Q6_K;
    case DType::kIQ4_NL: return IQ4_NL;
    case DType::kIQ4_XS: return IQ4_XS;
    default: return nullptr;
  }
}

}  // namespace

void Q3KScales(const uint8_t* s, int8_t* out) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

void DequantizeBlocks(DType t, const uint8_t* blocks, int64_t n, float* out) {
  const BlockFn fn = DecoderOf(t);
  const int64_t be = DTypeBlockElems(t), bb = DTypeBlockBytes(t);
  if (!fn) {
    for (int64_t i = 0; i < n; ++i) out[i] = 0.0f;  // not a block type: callers never pass one
    return;
  }
  for (int64_t i = 0; i < n / be; ++i) fn(blocks + i * bb, out + i * be);
}

}  // namespace dsv3
