// Absorbed MLA attention over the latent cache with a streaming softmax
// (flash-style): cache rows are visited in blocks of 64; for every token and
// group of up to 8 heads of the call, a block's scores update a running max
// and sum, rescale the accumulated output and add the block's weighted
// latents. A block is read from memory once per call (then from cache by
// every token and head), and nothing of size context x heads is materialised. Rows may be float32 or e4m3 with a scale for the latent
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

// P[g][j] = scale * q[g] . row_{j0+j} for G heads of one token and jn rows;
// with e4m3 rows the value weights are left scaled for AccumulateValues
// after the softmax (see FinishScores).
template <bool kF8>
HWY_INLINE void BlockScores(const MlaShape& s, const float* q, int64_t G, const LatentRows& rows, int64_t j0,
                            int64_t jn, float* P) {
  const int64_t rc = s.rc, lat = s.rc + s.dr;
  const float up = kF8 ? std::ldexp(1.0f, 120) : 1.0f;
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
}

// The streaming softmax step of one block for G heads: P becomes the block's
// weights exp(score - running max), O [G, rc] and the sums l are rescaled to
// the new max.
template <bool kF8>
HWY_INLINE void SoftmaxStep(DF df, int64_t G, int64_t jn, int64_t rc, const LatentRows& rows, int64_t j0, float* P,
                            float* mx, float* l, float* O) {
  const float up = kF8 ? std::ldexp(1.0f, 120) : 1.0f;
  for (int64_t g = 0; g < G; ++g) {
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
}

// Tokens p0 .. p0+m-1 of one slot, heads [h0, h1), attending their causal
// windows. The loop runs over blocks of cache rows outermost, so a block is
// read from memory once and then served from cache to every token and head
// group of the call (the old order streamed the whole context once per token
// and per 8 heads). Per (token, head) the arithmetic is the same whatever the
// call's token and head ranges, so chunked prefill, one-piece prefill and
// token-by-token decode give bit-identical results. o doubles as the output
// accumulator; scratch holds P and the running max and sum of each (token, head).
template <bool kF8>
void AttendTokens(const MlaShape& s, const float* q, int64_t q_stride, int64_t m, int64_t p0, int64_t h0, int64_t h1,
                  const LatentRows& rows, float* o, int64_t o_stride, float* scratch) {
  const DF df;
  const int64_t rc = s.rc, lat = s.rc + s.dr, heads = h1 - h0;
  float* P = scratch;                  // P [kGroup, kBlock]
  float* mx = P + kGroup * kBlock;     // mx [m, heads]
  float* l = mx + m * heads;           // l [m, heads]
  std::fill(mx, mx + m * heads, -std::numeric_limits<float>::infinity());
  std::fill(l, l + m * heads, 0.0f);
  for (int64_t i = 0; i < m; ++i) std::fill(o + i * o_stride + h0 * rc, o + i * o_stride + h1 * rc, 0.0f);
  for (int64_t j0 = 0; j0 < p0 + m; j0 += kBlock) {
    for (int64_t i = std::max<int64_t>(0, j0 - p0); i < m; ++i) {  // tokens whose window reaches row j0
      const int64_t jn = std::min(kBlock, p0 + i + 1 - j0);
      for (int64_t g0 = h0; g0 < h1; g0 += kGroup) {
        const int64_t G = std::min(kGroup, h1 - g0), state = i * heads + (g0 - h0);
        float* O = o + i * o_stride + g0 * rc;  // O [G, rc]
        BlockScores<kF8>(s, q + i * q_stride + g0 * lat, G, rows, j0, jn, P);
        SoftmaxStep<kF8>(df, G, jn, rc, rows, j0, P, mx + state, l + state, O);
        AccumulateValues<kF8>(P, G, jn, rows, j0, rc, O);
      }
    }
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t h = 0; h < heads; ++h) Scale(df, 1.0f / l[i * heads + h], o + i * o_stride + (h0 + h) * rc, rc);
}

void MlaAttentionImpl(const MlaShape& s, const float* q, int64_t q_stride, int64_t m, int64_t p0, int64_t h0,
                      int64_t h1, const LatentRows& rows, float* o, int64_t o_stride, float* scratch) {
  if (rows.f8)
    AttendTokens<true>(s, q, q_stride, m, p0, h0, h1, rows, o, o_stride, scratch);
  else
    AttendTokens<false>(s, q, q_stride, m, p0, h0, h1, rows, o, o_stride, scratch);
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(MlaAttentionImpl);

int64_t MlaScratchFloats(const MlaShape&, int64_t m, int64_t heads) { return 8 * 64 + 2 * m * heads + 64; }

void MlaAttention(const MlaShape& s, const float* q, int64_t q_stride, int64_t m, int64_t p0, int64_t h0, int64_t h1,
                  const LatentRows& rows, float* o, int64_t o_stride, float* scratch) {
  HWY_DYNAMIC_DISPATCH(MlaAttentionImpl)(s, q, q_stride, m, p0, h0, h1, rows, o, o_stride, scratch);
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
