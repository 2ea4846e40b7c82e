// Per-target unpacking of the ggml block types (core/ggml_quants.h) for the
// SIMD kernels over them (quant_matmul.cc: float32 activations;
// quant_int8.cc: int8 activations): one "kind" per type with its block
// geometry (kElems weights, groups of kGroup sharing a scale and, when
// kOffset, an offset) and Unpack(), which turns one block into integer levels
// with vector byte operations (nibble masks and shifts, bit tests, byte-table
// lookups for the IQ4 levels) into a 256-byte L1 buffer (Q8_0's are read in
// place) plus float scales and offsets: weight i of group g is exactly
// level[i] * scale[g] (+ offset[g]), ggml's float. level + kBias is the
// level as an unsigned byte (what VNNI's unsigned operand takes).
// Highway "-inl" header: included once per target by foreach_target.
#ifndef DSV3_CPU_QUANT_UNPACK_ONCE
#define DSV3_CPU_QUANT_UNPACK_ONCE
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/ggml_quants.h"
#include "cpu/kernels.h"

namespace dsv3::cpu {
// One block unpacked: weight i of group g is level[i] * scale[g] (+ offset[g]).
struct Levels {
  alignas(64) int8_t level[256];
  float scale[16];
  float offset[16];
};
// f16 -> f32 (exact either way): F16C where the baseline has it.
inline float Half(const uint8_t* p) {
#ifdef __F16C__
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
#else
  return LoadHalf(p);
#endif
}
}  // namespace dsv3::cpu
#endif  // DSV3_CPU_QUANT_UNPACK_ONCE

#if defined(DSV3_CPU_QUANT_UNPACK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV3_CPU_QUANT_UNPACK_INL_H_
#undef DSV3_CPU_QUANT_UNPACK_INL_H_
#else
#define DSV3_CPU_QUANT_UNPACK_INL_H_
#endif

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes, so one vector never spans two 16-weight groups.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;
// 16 bytes of packed block, 16 levels.
using DB = hn::Full128<uint8_t>;
using VB = hn::Vec<DB>;

HWY_INLINE VB Load16(const uint8_t* p) { return hn::LoadU(DB(), p); }
HWY_INLINE void Store16(VB v, int8_t* p) { hn::StoreU(v, DB(), reinterpret_cast<uint8_t*>(p)); }
HWY_INLINE VB Lo4(VB v) { return hn::And(v, hn::Set(DB(), 0x0F)); }
HWY_INLINE VB Hi4(VB v) { return hn::ShiftRight<4>(v); }
// 16 where bit `bit` of v is set, else 0 (a fifth level bit).
HWY_INLINE VB BitTo(VB v, uint8_t bit, uint8_t value) {
  const DB d;
  return hn::IfThenElseZero(hn::Ne(hn::And(v, hn::Set(d, bit)), hn::Zero(d)), hn::Set(d, value));
}

// ---- Unpacking, one kind per type: levels (returned), scales, offsets ----

// 16 bytes -> 32 levels: low nibbles then high nibbles, minus `bias`.
HWY_INLINE void Nibbles(const uint8_t* qs, int8_t* L, uint8_t bias) {
  const VB v = Load16(qs), b = hn::Set(DB(), bias);
  Store16(hn::Sub(Lo4(v), b), L);
  Store16(hn::Sub(Hi4(v), b), L + 16);
}
// Q5_0/Q5_1's fifth bits (u32 at qh, bit j for element j) as 0/16 per level,
// added to the 32 levels at L.
HWY_INLINE void Fifth(const uint8_t* qh, int8_t* L) {
  const DB d;
  alignas(16) static constexpr uint8_t kByte[2][16] = {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
                                                       {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3}};
  alignas(16) static constexpr uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  uint32_t h;
  std::memcpy(&h, qh, 4);
  const VB bytes = hn::BitCast(d, hn::Set(hn::Full128<uint32_t>(), h)), bits = hn::Load(d, kBit);
  for (int c = 0; c < 2; ++c) {
    const VB sel = hn::And(hn::TableLookupBytes(bytes, hn::Load(d, kByte[c])), bits);
    const VB five = hn::IfThenElseZero(hn::Ne(sel, hn::Zero(d)), hn::Set(d, 16));
    Store16(hn::Add(hn::BitCast(d, hn::LoadU(hn::Full128<int8_t>(), L + 16 * c)), five), L + 16 * c);
  }
}
HWY_INLINE void Iq4Levels(const uint8_t* qs, int8_t* L) {
  const VB table = hn::LoadU(DB(), reinterpret_cast<const uint8_t*>(kIq4NlValues)), v = Load16(qs);
  Store16(hn::TableLookupBytes(table, Lo4(v)), L);
  Store16(hn::TableLookupBytes(table, Hi4(v)), L + 16);
}
// Q2_K/Q3_K's 2-bit levels: group 8h + 2s + k is bits 2s of qs[32h + 16k ..].
HWY_INLINE void TwoBit(const uint8_t* qs, int8_t* L) {
  const VB three = hn::Set(DB(), 3);
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 2; ++k) {
      const VB v = Load16(qs + 32 * h + 16 * k);
      int8_t* o = L + 128 * h + 16 * k;
      Store16(hn::And(v, three), o);
      Store16(hn::And(hn::ShiftRight<2>(v), three), o + 32);
      Store16(hn::And(hn::ShiftRight<4>(v), three), o + 64);
      Store16(hn::ShiftRight<6>(v), o + 96);
    }
}

// out[i] = d * v[i] for `count` (8 or 16) bytes v, signed or not; negated
// (-(d * v), ggml's "- m" as "+ offset") when kNeg.
template <typename T, bool kNeg = false>
HWY_INLINE void ScaleBytes(const T* v, int count, float d, float* out) {
  const hn::CappedTag<float, 8> df;
  const hn::Rebind<T, decltype(df)> d8;
  const hn::RebindToSigned<decltype(df)> di;
  for (int i = 0; i < count; i += static_cast<int>(hn::Lanes(df))) {
    const auto f = hn::Mul(hn::Set(df, d), hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, v + i))));
    hn::StoreU(kNeg ? hn::Neg(f) : f, df, out + i);
  }
}

struct KQ4_0 {
  static constexpr DType kType = DType::kQ4_0;
  static constexpr int kBias = 8;
  static constexpr int kElems = 32, kGroup = 32;
  static constexpr bool kOffset = false;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    u.scale[0] = Half(b);
    Nibbles(b + 2, u.level, 8);
    return u.level;
  }
};
struct KQ4_1 {
  static constexpr DType kType = DType::kQ4_1;
  static constexpr int kBias = 0;
  static constexpr int kElems = 32, kGroup = 32;
  static constexpr bool kOffset = true;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    u.scale[0] = Half(b), u.offset[0] = Half(b + 2);
    Nibbles(b + 4, u.level, 0);
    return u.level;
  }
};
struct KQ5_0 {
  static constexpr DType kType = DType::kQ5_0;
  static constexpr int kBias = 16;
  static constexpr int kElems = 32, kGroup = 32;
  static constexpr bool kOffset = false;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    u.scale[0] = Half(b);
    Nibbles(b + 6, u.level, 16);  // (q | fifth << 4) - 16 == (q - 16) + fifth * 16
    Fifth(b + 2, u.level);
    return u.level;
  }
};
struct KQ5_1 {
  static constexpr DType kType = DType::kQ5_1;
  static constexpr int kBias = 0;
  static constexpr int kElems = 32, kGroup = 32;
  static constexpr bool kOffset = true;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    u.scale[0] = Half(b), u.offset[0] = Half(b + 2);
    Nibbles(b + 8, u.level, 0);
    Fifth(b + 4, u.level);
    return u.level;
  }
};
struct KQ8_0 {
  static constexpr DType kType = DType::kQ8_0;
  static constexpr int kBias = 128;
  static constexpr int kElems = 32, kGroup = 32;
  static constexpr bool kOffset = false;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    u.scale[0] = Half(b);
    return reinterpret_cast<const int8_t*>(b + 2);  // read in place
  }
};
struct KIQ4_NL {
  static constexpr DType kType = DType::kIQ4_NL;
  static constexpr int kBias = 128;
  static constexpr int kElems = 32, kGroup = 32;
  static constexpr bool kOffset = false;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    u.scale[0] = Half(b);
    Iq4Levels(b + 2, u.level);
    return u.level;
  }
};
struct KIQ4_XS {
  static constexpr DType kType = DType::kIQ4_XS;
  static constexpr int kBias = 128;
  static constexpr int kElems = 256, kGroup = 32;
  static constexpr bool kOffset = false;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    const float d = Half(b);
    for (int ib = 0; ib < 8; ++ib) {
      u.scale[ib] = d * static_cast<float>(Iq4XsScale(b, ib));
      Iq4Levels(b + 8 + 16 * ib, u.level + 32 * ib);
    }
    return u.level;
  }
};
struct KQ2_K {
  static constexpr DType kType = DType::kQ2_K;
  static constexpr int kBias = 0;
  static constexpr int kElems = 256, kGroup = 16;
  static constexpr bool kOffset = true;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    alignas(16) uint8_t sc[16], mn[16];
    const VB v = Load16(b);
    hn::Store(Lo4(v), DB(), sc);
    hn::Store(Hi4(v), DB(), mn);
    ScaleBytes(sc, 16, Half(b + 80), u.scale);
    ScaleBytes<uint8_t, true>(mn, 16, Half(b + 82), u.offset);  // a + (-m) is a - m exactly
    TwoBit(b + 16, u.level);
    return u.level;
  }
};
struct KQ3_K {
  static constexpr DType kType = DType::kQ3_K;
  static constexpr int kBias = 4;
  static constexpr int kElems = 256, kGroup = 16;
  static constexpr bool kOffset = false;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    const float d = Half(b + 108);
    int8_t sc[16];
    Q3KScales(b + 96, sc);
    ScaleBytes(sc, 16, d, u.scale);
    TwoBit(b + 32, u.level);
    // Element 32j + m loses 4 unless bit j of hmask[m] is set.
    const DB dd;
    const VB hm[2] = {Load16(b), Load16(b + 16)};
    for (int j = 0; j < 8; ++j)
      for (int c = 0; c < 2; ++c) {
        int8_t* o = u.level + 32 * j + 16 * c;
        const VB four = hn::IfThenZeroElse(hn::Ne(hn::And(hm[c], hn::Set(dd, 1 << j)), hn::Zero(dd)), hn::Set(dd, 4));
        Store16(hn::Sub(hn::BitCast(dd, hn::LoadU(hn::Full128<int8_t>(), o)), four), o);
      }
    return u.level;
  }
};
// Q4_K/Q5_K: group 2g + k is nibble k of the 32 bytes qs[32g ..]; Q5_K's
// fifth bit of it is bit 2g + k of qh[l].
template <bool kFive>
HWY_INLINE const int8_t* UnpackQ45_K(const uint8_t* b, Levels& u) {
  // The eight 6-bit scales and mins (KScaleMin), four per 32-bit word.
  uint32_t a[3], sc[2], mn[2];
  std::memcpy(a, b + 4, 12);
  constexpr uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
  sc[0] = a[0] & k6, mn[0] = a[1] & k6;
  sc[1] = (a[2] & k4) | (((a[0] >> 6) & k2) << 4);
  mn[1] = ((a[2] >> 4) & k4) | (((a[1] >> 6) & k2) << 4);
  ScaleBytes(reinterpret_cast<const uint8_t*>(sc), 8, Half(b), u.scale);
  ScaleBytes<uint8_t, true>(reinterpret_cast<const uint8_t*>(mn), 8, Half(b + 2), u.offset);
  const uint8_t* qs = b + (kFive ? 48 : 16);
  for (int g = 0; g < 4; ++g)
    for (int c = 0; c < 2; ++c) {
      const VB v = Load16(qs + 32 * g + 16 * c);
      VB lo = Lo4(v), hi = Hi4(v);
      if (kFive) {
        const VB qh = Load16(b + 16 + 16 * c);
        lo = hn::Or(lo, BitTo(qh, static_cast<uint8_t>(1 << (2 * g)), 16));
        hi = hn::Or(hi, BitTo(qh, static_cast<uint8_t>(1 << (2 * g + 1)), 16));
      }
      Store16(lo, u.level + 64 * g + 16 * c);
      Store16(hi, u.level + 64 * g + 32 + 16 * c);
    }
  return u.level;
}
struct KQ4_K {
  static constexpr DType kType = DType::kQ4_K;
  static constexpr int kBias = 0;
  static constexpr int kElems = 256, kGroup = 32;
  static constexpr bool kOffset = true;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) { return UnpackQ45_K<false>(b, u); }
};
struct KQ5_K {
  static constexpr DType kType = DType::kQ5_K;
  static constexpr int kBias = 0;
  static constexpr int kElems = 256, kGroup = 32;
  static constexpr bool kOffset = true;
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) { return UnpackQ45_K<true>(b, u); }
};
struct KQ6_K {
  static constexpr DType kType = DType::kQ6_K;
  static constexpr int kBias = 32;
  static constexpr int kElems = 256, kGroup = 16;
  static constexpr bool kOffset = false;
  // Per half h and l < 32: elements l, l+32, l+64, l+96 are the low/high
  // nibbles of ql[l], ql[l+32] with bit pairs 0, 2, 4, 6 of qh[l] on top, - 32.
  static HWY_INLINE const int8_t* Unpack(const uint8_t* b, Levels& u) {
    const DB d;
    ScaleBytes(reinterpret_cast<const int8_t*>(b + 192), 16, Half(b + 208), u.scale);
    const VB m30 = hn::Set(d, 0x30), b32 = hn::Set(d, 32);
    for (int h = 0; h < 2; ++h)
      for (int c = 0; c < 2; ++c) {
        const VB ql0 = Load16(b + 64 * h + 16 * c), ql1 = Load16(b + 64 * h + 32 + 16 * c);
        const VB qh = Load16(b + 128 + 32 * h + 16 * c);
        int8_t* o = u.level + 128 * h + 16 * c;
        Store16(hn::Sub(hn::Or(Lo4(ql0), hn::And(hn::ShiftLeft<4>(qh), m30)), b32), o);
        Store16(hn::Sub(hn::Or(Lo4(ql1), hn::And(hn::ShiftLeft<2>(qh), m30)), b32), o + 32);
        Store16(hn::Sub(hn::Or(Hi4(ql0), hn::And(qh, m30)), b32), o + 64);
        Store16(hn::Sub(hn::Or(Hi4(ql1), hn::And(hn::ShiftRight<2>(qh), m30)), b32), o + 96);
      }
    return u.level;
  }
};

// ---- Weights in registers ----

// Calls fn(i, w) for the weights [i, i + N) of one unpacked block.
template <class K, class Fn>
HWY_INLINE void ForEachVector(const int8_t* level, const Levels& u, const Fn& fn) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const hn::RebindToSigned<DF> di;
  constexpr int N = static_cast<int>(hn::MaxLanes(DF()));
  // Fully unrolled: the kernels' accumulator index (i / N) & 1 must be a
  // constant, or the accumulators live in memory.
#pragma GCC unroll 16
  for (int g = 0; g < K::kElems / K::kGroup; ++g) {
    const VF scale = hn::Set(df, u.scale[g]);
#pragma GCC unroll 4
    for (int i = g * K::kGroup; i < (g + 1) * K::kGroup; i += N) {
      VF w = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, level + i))), scale);
      if constexpr (K::kOffset) w = hn::Add(w, hn::Set(df, u.offset[g]));  // no offset: no +0 (-0 stays -0)
      fn(i, w);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#endif  // DSV3_CPU_QUANT_UNPACK_INL_H_
