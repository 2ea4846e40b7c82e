// Absorbed MLA attention over the latent cache with a streaming softmax
// (flash-style): for a group of up to 8 heads of one query token, cache rows
// are visited in blocks; each block's scores update a running max and sum,
// rescale the accumulated output and add the block's weighted latents. Every
// cache row is read once per head group, and nothing of size context x heads
// is materialised. Rows may be float32 or e4m3 with a scale for the latent
// part and one for the rotary part (per token).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kGroup = 8;    // heads sharing one pass over the cache
constexpr int64_t kBlock = 64;   // cache rows per softmax block

// e4m3 bytes -> floats * 2^-120 in natural order (see matmul.cc for the trick).
HWY_INLINE VF LoadF8(DF df, const uint8_t* p) {
  const hn::Rebind<int8_t, DF> d8;
  const hn::RebindToSigned<DF> di;
  const auto v = hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(p)));
  return hn::BitCast(df, hn::And(hn::ShiftLeft<20>(v), hn::Set(di, static_cast<int32_t>(0x87F00000u))));
}

HWY_INLINE float ScalarF8(uint8_t q) { return std::ldexp(F8E4M3ToF32(q), -120); }

// s[g] = sum_k q[g][k] * row[k] over k in [k0, k1), G query rows lat apart.
template <bool kF8>
HWY_INLINE void GroupDot(const float* q, int64_t lat, int64_t G, const void* row, int64_t k0, int64_t k1, float* s) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF acc[kGroup];
  for (int64_t g = 0; g < kGroup; ++g) acc[g] = hn::Zero(df);
  int64_t k = k0;
  for (; k + N <= k1; k += N) {
    const VF r = kF8 ? LoadF8(df, static_cast<const uint8_t*>(row) + k) : hn::LoadU(df, static_cast<const float*>(row) + k);
    for (int64_t g = 0; g < G; ++g) acc[g] = hn::MulAdd(hn::LoadU(df, q + g * lat + k), r, acc[g]);
  }
  for (int64_t g = 0; g < G; ++g) {
    float v = hn::GetLane(hn::SumOfLanes(df, acc[g]));
    for (int64_t kk = k; kk < k1; ++kk)
      v += q[g * lat + kk] * (kF8 ? ScalarF8(static_cast<const uint8_t*>(row)[kk]) : static_cast<const float*>(row)[kk]);
    s[g] = v;
  }
}

// O[g] += sum_j P[g][j] * row_j[0..rc) for jn rows starting at `first`.
template <bool kF8>
HWY_INLINE void AccumulateValues(const float* P, int64_t G, int64_t jn, const LatentRows& rows, int64_t first,
                                 int64_t rc, float* O) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t k = 0;
  for (; k + 2 * N <= rc; k += 2 * N) {
    VF a[kGroup][2];
    for (int64_t g = 0; g < G; ++g) {
      a[g][0] = hn::LoadU(df, O + g * rc + k);
      a[g][1] = hn::LoadU(df, O + g * rc + k + N);
    }
    for (int64_t j = 0; j < jn; ++j) {
      VF r0, r1;
      if (kF8) {
        const uint8_t* row = rows.f8 + (first + j) * rows.stride;
        r0 = LoadF8(df, row + k), r1 = LoadF8(df, row + k + N);
      } else {
        const float* row = rows.f32 + (first + j) * rows.stride;
        r0 = hn::LoadU(df, row + k), r1 = hn::LoadU(df, row + k + N);
      }
      for (int64_t g = 0; g < G; ++g) {
        const VF p = hn::Set(df, P[g * kBlock + j]);
        a[g][0] = hn::MulAdd(p, r0, a[g][0]);
        a[g][1] = hn::MulAdd(p, r1, a[g][1]);
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      hn::StoreU(a[g][0], df, O + g * rc + k);
      hn::StoreU(a[g][1], df, O + g * rc + k + N);
    }
  }
  for (; k < rc; ++k)
    for (int64_t j = 0; j < jn; ++j) {
      const float v = kF8 ? ScalarF8(rows.f8[(first + j) * rows.stride + k]) : rows.f32[(first + j) * rows.stride + k];
      for (int64_t g = 0; g < G; ++g) O[g * rc + k] += P[g * kBlock + j] * v;
    }
}

HWY_INLINE void Scale(DF df, float a, float* x, int64_t n) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF av = hn::Set(df, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), av), df, x + i);
  for (; i < n; ++i) x[i] *= a;
}

// p[0..n) = exp(p - m); returns their sum.
HWY_INLINE float ExpShiftSum(DF df, float* p, int64_t n, float m) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF mv = hn::Set(df, m);
  VF sv = hn::Zero(df);
  int64_t j = 0;
  for (; j + N <= n; j += N) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, p + j), mv));
    hn::StoreU(e, df, p + j);
    sv = hn::Add(sv, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, sv));
  for (; j < n; ++j) sum += (p[j] = std::exp(p[j] - m));
  return sum;
}

// One head group of one token attending rows [0, len).
template <bool kF8>
void AttendGroup(const MlaShape& s, const float* q, int64_t G, int64_t len, const LatentRows& rows, float* o,
                 float* scratch) {
  const DF df;
  const int64_t rc = s.rc, lat = s.rc + s.dr;
  float* O = scratch;                  // O [G, rc]
  float* P = O + kGroup * rc;          // P [G, kBlock]
  float mx[kGroup], l[kGroup];
  std::fill(O, O + G * rc, 0.0f);
  for (int64_t g = 0; g < G; ++g) mx[g] = -std::numeric_limits<float>::infinity(), l[g] = 0.0f;
  const float up = kF8 ? std::ldexp(1.0f, 120) : 1.0f;
  for (int64_t j0 = 0; j0 < len; j0 += kBlock) {
    const int64_t jn = std::min(kBlock, len - j0);
    for (int64_t j = 0; j < jn; ++j) {
      float sc[kGroup], sr[kGroup];
      if (kF8) {
        const uint8_t* row = rows.f8 + (j0 + j) * rows.stride;
        GroupDot<true>(q, lat, G, row, 0, rc, sc);
        GroupDot<true>(q, lat, G, row, rc, lat, sr);
        const float c_scale = rows.f8_scale[2 * (j0 + j)] * up, r_scale = rows.f8_scale[2 * (j0 + j) + 1] * up;
        for (int64_t g = 0; g < G; ++g) P[g * kBlock + j] = s.scale * (sc[g] * c_scale + sr[g] * r_scale);
      } else {
        GroupDot<false>(q, lat, G, rows.f32 + (j0 + j) * rows.stride, 0, lat, sc);
        for (int64_t g = 0; g < G; ++g) P[g * kBlock + j] = s.scale * sc[g];
      }
    }
    for (int64_t g = 0; g < G; ++g) {  // streaming softmax update
      float* p = P + g * kBlock;
      float m_new = mx[g];
      for (int64_t j = 0; j < jn; ++j) m_new = std::max(m_new, p[j]);
      const float alpha = std::exp(mx[g] - m_new);
      l[g] = l[g] * alpha + ExpShiftSum(df, p, jn, m_new);
      mx[g] = m_new;
      if (alpha != 1.0f) Scale(df, alpha, O + g * rc, rc);
      if (kF8)
        for (int64_t j = 0; j < jn; ++j) p[j] *= rows.f8_scale[2 * (j0 + j)] * up;
    }
    AccumulateValues<kF8>(P, G, jn, rows, j0, rc, O);
  }
  for (int64_t g = 0; g < G; ++g) {
    const float inv = 1.0f / l[g];
    for (int64_t k = 0; k < rc; ++k) o[g * rc + k] = O[g * rc + k] * inv;
  }
}

void MlaAttentionImpl(const MlaShape& s, const float* q, int64_t q_stride, int64_t m, int64_t p0, int64_t h0,
                      int64_t h1, const LatentRows& rows, float* o, int64_t o_stride, float* scratch) {
  const int64_t lat = s.rc + s.dr;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g0 = h0; g0 < h1; g0 += kGroup) {
      const int64_t G = std::min(kGroup, h1 - g0);
      const float* qg = q + i * q_stride + g0 * lat;
      float* og = o + i * o_stride + g0 * s.rc;
      if (rows.f8)
        AttendGroup<true>(s, qg, G, p0 + i + 1, rows, og, scratch);
      else
        AttendGroup<false>(s, qg, G, p0 + i + 1, rows, og, scratch);
    }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(MlaAttentionImpl);

int64_t MlaScratchFloats(const MlaShape& s, int64_t, int64_t) { return 8 * s.rc + 8 * 64 + 64; }

void MlaAttention(const MlaShape& s, const float* q, int64_t q_stride, int64_t m, int64_t p0, int64_t h0, int64_t h1,
                  const LatentRows& rows, float* o, int64_t o_stride, float* scratch) {
  HWY_DYNAMIC_DISPATCH(MlaAttentionImpl)(s, q, q_stride, m, p0, h0, h1, rows, o, o_stride, scratch);
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
