// Highway kernels for softmax rows; see vec.h.
#include "train/vec.h"

#include <algorithm>
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "train/vec.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace dsv3::train {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

double ExpShiftSumImpl(float* x, int64_t n, float shift) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto s = hn::Set(d, shift);
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), s));
    hn::StoreU(e, d, x + i);
    acc = hn::Add(acc, e);
  }
  double sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

float RowMaxImpl(const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  float m = x[0];
  int64_t i = 0;
  if (n >= L) {
    auto acc = hn::LoadU(d, x);
    for (i = L; i + L <= n; i += L) acc = hn::Max(acc, hn::LoadU(d, x + i));
    m = hn::GetLane(hn::MaxOfLanes(d, acc));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

void ScaleRowImpl(float* x, int64_t n, float s) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto v = hn::Set(d, s);
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), v), d, x + i);
  for (; i < n; ++i) x[i] *= s;
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::train
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::train {

HWY_EXPORT(ExpShiftSumImpl);
HWY_EXPORT(RowMaxImpl);
HWY_EXPORT(ScaleRowImpl);

double ExpShiftSum(float* x, int64_t n, float shift) { return HWY_DYNAMIC_DISPATCH(ExpShiftSumImpl)(x, n, shift); }
float RowMax(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(RowMaxImpl)(x, n); }
void ScaleRow(float* x, int64_t n, float s) { HWY_DYNAMIC_DISPATCH(ScaleRowImpl)(x, n, s); }

double ExpShiftSumReference(float* x, int64_t n, float shift) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

}  // namespace dsv3::train
#endif  // HWY_ONCE
