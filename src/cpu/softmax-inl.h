// The streaming softmax's vector steps shared by the two MLA attention
// kernels (attention.cc: absorbed, attention_mha.cc: decompressed): scores
// turned into exp(score - max) with their sum, and a row rescaled when the
// running max moves. Highway "-inl" header: included once per target by
// foreach_target, after <hwy/highway.h>.
#if defined(DSV3_CPU_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV3_CPU_SOFTMAX_INL_H_
#undef DSV3_CPU_SOFTMAX_INL_H_
#else
#define DSV3_CPU_SOFTMAX_INL_H_
#endif

#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {

// x[0..n) *= a.
HWY_INLINE void Scale(hwy::HWY_NAMESPACE::ScalableTag<float> df, float a, float* x, int64_t n) {
  namespace hn = hwy::HWY_NAMESPACE;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto av = hn::Set(df, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), av), df, x + i);
  for (; i < n; ++i) x[i] *= a;
}

// p[0..n) = exp(p - m); returns their sum.
HWY_INLINE float ExpShiftSum(hwy::HWY_NAMESPACE::ScalableTag<float> df, float* p, int64_t n, float m) {
  namespace hn = hwy::HWY_NAMESPACE;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto mv = hn::Set(df, m);
  auto sv = hn::Zero(df);
  int64_t j = 0;
  for (; j + N <= n; j += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, p + j), mv));
    hn::StoreU(e, df, p + j);
    sv = hn::Add(sv, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, sv));
  for (; j < n; ++j) sum += (p[j] = std::exp(p[j] - m));
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#endif  // DSV3_CPU_SOFTMAX_INL_H_
