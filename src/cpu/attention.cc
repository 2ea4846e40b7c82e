// Absorbed MLA attention over the latent cache with a streaming softmax
// (flash-style): cache rows are visited in blocks of 64; for every token and
// group of up to 8 heads of the call, a block's scores update a running max
// and sum, rescale the accumulated output and add the block's weighted
// latents. A block is read from memory once per call (then from cache by
// every token and head), and nothing of size context x heads is
// materialised. Rows may be float32 or e4m3 with a scale for the latent part
// and one for the rotary part (per token). At long contexts the FMA units,
// not memory, bound this kernel (2 H (2 rc + dr) flops per 576-byte row), so
// the inner loops are shaped for them: group and row counts are template
// arguments (accumulators in registers), scores take three rows per pass on
// 32-register targets (each q load feeds three FMAs), and one shuffle tree
// sums the lanes of all eight heads.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/kernels.h"
#include "cpu/softmax-inl.h"

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

// sums[g] = the sum of acc[g]'s lanes, g < G. One shuffle tree serves all
// eight heads of a group (interleave pairs of heads, then pairs of pairs,
// then add the 128-bit blocks), several times cheaper than eight separate
// reductions. Missing heads (G < 8) are zeros, so every head's lanes are
// added in the same order whatever G is: results do not depend on how the
// heads were grouped.
template <int64_t G>
HWY_INLINE void SumsOfGroup(DF df, const VF* acc, float* sums) {
#if HWY_TARGET == HWY_SCALAR
  for (int64_t g = 0; g < G; ++g) sums[g] = hn::GetLane(acc[g]);
#else
  static_assert(kGroup == 8, "the tree pairs eight heads");
  const hn::Repartition<uint64_t, DF> du;
  const hn::Full128<float> d4;
  VF v[kGroup];
  for (int64_t g = 0; g < kGroup; ++g) v[g] = g < G ? acc[g] : hn::Zero(df);
  VF pair[4];  // per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3]
  for (int64_t i = 0; i < 4; ++i)
    pair[i] = hn::Add(hn::InterleaveLower(df, v[2 * i], v[2 * i + 1]), hn::InterleaveUpper(df, v[2 * i], v[2 * i + 1]));
  HWY_ALIGN float quad[2 * hn::MaxLanes(df)];  // per block: [a, b, c, d] partial sums
  for (int64_t i = 0; i < 2; ++i) {
    const auto lo = hn::BitCast(du, pair[2 * i]), hi = hn::BitCast(du, pair[2 * i + 1]);
    const VF q4 = hn::Add(hn::BitCast(df, hn::InterleaveLower(du, lo, hi)), hn::BitCast(df, hn::InterleaveUpper(du, lo, hi)));
    hn::Store(q4, df, quad + i * hn::Lanes(df));
  }
  const int64_t blocks = static_cast<int64_t>(hn::Lanes(df)) / 4;
  for (int64_t i = 0; i < 2; ++i) {
    const float* qi = quad + i * hn::Lanes(df);
    auto t = hn::Load(d4, qi);
    for (int64_t b = 1; b < blocks; ++b) t = hn::Add(t, hn::Load(d4, qi + 4 * b));
    hn::StoreU(t, d4, sums + 4 * i);
  }
#endif
}

// s[r][g] = sum_k q[g][k] * row_r[k] over k in [k0, k1), G query rows lat
// apart, R cache rows at once (each q vector loaded once serves R rows: the
// loads, not the FMAs, limited the one-row loop). G and R are template
// arguments so the accumulators stay in registers (a run-time count made the
// compiler keep them on the stack). Per (row, head) the FMA chain and the
// lane sums are the same for any R, so results do not depend on R.
template <bool kF8, int64_t G, int64_t R>
HWY_INLINE void GroupDot(const float* q, int64_t lat, const void* const* row, int64_t k0, int64_t k1,
                         float (*s)[kGroup]) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF acc[R][G];
  for (int64_t r = 0; r < R; ++r)
    for (int64_t g = 0; g < G; ++g) acc[r][g] = hn::Zero(df);
  int64_t k = k0;
  for (; k + N <= k1; k += N) {
    VF x[R];
    for (int64_t r = 0; r < R; ++r)
      x[r] = kF8 ? LoadF8(df, static_cast<const uint8_t*>(row[r]) + k) : hn::LoadU(df, static_cast<const float*>(row[r]) + k);
    for (int64_t g = 0; g < G; ++g) {
      VF qv = hn::LoadU(df, q + g * lat + k);
#if HWY_ARCH_X86 && HWY_COMPILER_GCC && HWY_TARGET != HWY_SCALAR
      // Keep qv in a register: GCC otherwise folds the load into each of
      // the R FMAs, and loads, not FMAs, are what this loop runs out of.
      if constexpr (R > 1) asm("" : "+v"(qv.raw));
#endif
      for (int64_t r = 0; r < R; ++r) acc[r][g] = hn::MulAdd(qv, x[r], acc[r][g]);
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    SumsOfGroup<G>(df, acc[r], s[r]);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t kk = k; kk < k1; ++kk)
        s[r][g] += q[g * lat + kk] * (kF8 ? ScalarF8(static_cast<const uint8_t*>(row[r])[kk])
                                          : static_cast<const float*>(row[r])[kk]);
  }
}

// O[g] += sum_j P[g][j] * row_j[0..rc) for jn rows starting at `first`.
template <bool kF8, int64_t G>
HWY_INLINE void AccumulateValues(const float* P, int64_t jn, const LatentRows& rows, int64_t first,
                                 int64_t rc, float* O) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t k = 0;
  for (; k + 2 * N <= rc; k += 2 * N) {
    VF a[G][2];
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

// P[g][j + r] = scale * q[g] . row_{j0+j+r} for G heads of one token and the
// R rows j .. j+R-1 of the block; the FP8 latent and rotary parts are summed
// separately and weighted by their own scales.
template <bool kF8, int64_t G, int64_t R>
HWY_INLINE void RowScores(const MlaShape& s, const float* q, const LatentRows& rows, int64_t j0, int64_t j,
                          float* P) {
  const int64_t rc = s.rc, lat = s.rc + s.dr;
  float sc[R][kGroup], sr[R][kGroup];
  const void* row[R];
  for (int64_t r = 0; r < R; ++r)
    row[r] = kF8 ? static_cast<const void*>(rows.f8 + (j0 + j + r) * rows.stride)
                 : static_cast<const void*>(rows.f32 + (j0 + j + r) * rows.stride);
  // Rows a few ahead, so a long context streams from memory while these are
  // scored (prefetches never fault, past the last row included).
  constexpr int64_t kAhead = 8;
  const int64_t elem = kF8 ? 1 : 4, ahead = kAhead * rows.stride * elem;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = 0; b < lat * elem; b += 64) hwy::Prefetch(static_cast<const uint8_t*>(row[r]) + ahead + b);
  if (kF8) {
    const float up = std::ldexp(1.0f, 120);
    GroupDot<true, G, R>(q, lat, row, 0, rc, sc);
    const void* rope[R];
    for (int64_t r = 0; r < R; ++r) rope[r] = static_cast<const uint8_t*>(row[r]) + rc;
    GroupDot<true, G, R>(q + rc, lat, rope, 0, s.dr, sr);
    for (int64_t r = 0; r < R; ++r) {
      const float c_scale = rows.f8_scale[2 * (j0 + j + r)] * up, r_scale = rows.f8_scale[2 * (j0 + j + r) + 1] * up;
      for (int64_t g = 0; g < G; ++g) P[g * kBlock + j + r] = s.scale * (sc[r][g] * c_scale + sr[r][g] * r_scale);
    }
  } else {
    GroupDot<false, G, R>(q, lat, row, 0, lat, sc);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t g = 0; g < G; ++g) P[g * kBlock + j + r] = s.scale * sc[r][g];
  }
}

// Three rows per pass where there are 32 vector registers (24 accumulators,
// three rows and a q vector; about 1.1x two rows and 1.5x one row with FP8
// rows in kernels_bench); one elsewhere.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kRowsPerPass = 3;
#else
constexpr int64_t kRowsPerPass = 1;
#endif

// P[g][j] = scale * q[g] . row_{j0+j} for G heads of one token and jn rows;
// with e4m3 rows the value weights are left scaled for AccumulateValues
// after the softmax (see SoftmaxStep).
template <bool kF8, int64_t G>
HWY_INLINE void BlockScores(const MlaShape& s, const float* q, const LatentRows& rows, int64_t j0, int64_t jn,
                            float* P) {
  int64_t j = 0;
  for (; j + kRowsPerPass <= jn; j += kRowsPerPass) RowScores<kF8, G, kRowsPerPass>(s, q, rows, j0, j, P);
  for (; j < jn; ++j) RowScores<kF8, G, 1>(s, q, rows, j0, j, P);
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

// One block of rows for G heads of one token: scores, softmax step, values.
template <bool kF8, int64_t G>
HWY_INLINE void GroupBlockOf(DF df, const MlaShape& s, const float* q, const LatentRows& rows, int64_t j0, int64_t jn,
                             float* P, float* mx, float* l, float* O) {
  BlockScores<kF8, G>(s, q, rows, j0, jn, P);
  SoftmaxStep<kF8>(df, G, jn, s.rc, rows, j0, P, mx, l, O);
  AccumulateValues<kF8, G>(P, jn, rows, j0, s.rc, O);
}

template <bool kF8>
void GroupBlock(DF df, const MlaShape& s, const float* q, int64_t G, const LatentRows& rows, int64_t j0, int64_t jn,
                float* P, float* mx, float* l, float* O) {
  static_assert(kGroup == 8, "one case per group size");
  switch (G) {
    case 8: return GroupBlockOf<kF8, 8>(df, s, q, rows, j0, jn, P, mx, l, O);
    case 7: return GroupBlockOf<kF8, 7>(df, s, q, rows, j0, jn, P, mx, l, O);
    case 6: return GroupBlockOf<kF8, 6>(df, s, q, rows, j0, jn, P, mx, l, O);
    case 5: return GroupBlockOf<kF8, 5>(df, s, q, rows, j0, jn, P, mx, l, O);
    case 4: return GroupBlockOf<kF8, 4>(df, s, q, rows, j0, jn, P, mx, l, O);
    case 3: return GroupBlockOf<kF8, 3>(df, s, q, rows, j0, jn, P, mx, l, O);
    case 2: return GroupBlockOf<kF8, 2>(df, s, q, rows, j0, jn, P, mx, l, O);
    default: return GroupBlockOf<kF8, 1>(df, s, q, rows, j0, jn, P, mx, l, O);
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
        GroupBlock<kF8>(df, s, q + i * q_stride + g0 * lat, G, rows, j0, jn, P, mx + state, l + state, O);
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
