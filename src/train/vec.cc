// Highway kernels for softmax rows; see vec.h.
#include "train/vec.h"

#include "train/quant.h"

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

// silu(g) * u with sigmoid(g) = 1 / (1 + exp(-g)).
void SiluMulRowImpl(const float* gate, const float* up, float* act, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto g = hn::LoadU(d, gate + i);
    const auto sig = hn::Div(one, hn::Add(one, hn::Exp(d, hn::Neg(g))));
    hn::StoreU(hn::Mul(hn::Mul(g, sig), hn::LoadU(d, up + i)), d, act + i);
  }
  for (; i < n; ++i) act[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// dup = dact * silu(g); dgate = dact * u * s * (1 + g (1 - s)), s = sigmoid(g).
void SiluMulBackwardRowImpl(const float* dact, const float* gate, const float* up, float* dgate, float* dup,
                            int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto g = hn::LoadU(d, gate + i), da = hn::LoadU(d, dact + i);
    const auto sig = hn::Div(one, hn::Add(one, hn::Exp(d, hn::Neg(g))));
    hn::StoreU(hn::Mul(da, hn::Mul(g, sig)), d, dup + i);
    const auto slope = hn::Mul(sig, hn::MulAdd(g, hn::Sub(one, sig), one));
    hn::StoreU(hn::Mul(hn::Mul(da, hn::LoadU(d, up + i)), slope), d, dgate + i);
  }
  for (; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dact[i] * g * sg;
    dgate[i] = dact[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
  }
}

// The branch-free e4m3 rounding of quant.h on vectors.
template <class D, class V>
HWY_INLINE V RoundE4M3Vec(D d, V x) {
  const hn::RebindToUnsigned<D> du;
  const V a = hn::Abs(x);
  const V big = hn::Set(d, 12582912.0f);
  const V sub = hn::Mul(hn::Sub(hn::MulAdd(a, hn::Set(d, 512.0f), big), big), hn::Set(d, 1.0f / 512.0f));
  auto u = hn::BitCast(du, a);
  u = hn::And(hn::Add(hn::Add(u, hn::Set(du, 0x7ffffu)), hn::And(hn::ShiftRight<20>(u), hn::Set(du, 1u))),
              hn::Set(du, 0xfff00000u));
  V r = hn::IfThenElse(hn::Lt(a, hn::Set(d, 0.015625f)), sub, hn::BitCast(d, u));
  r = hn::Min(r, hn::Set(d, 448.0f));
  return hn::CopySign(r, x);
}

void RoundE4M3RowImpl(const float* x, float* out, int64_t n, const float* inv, const float* scale, bool per_element) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto vi = per_element ? hn::LoadU(d, inv + i) : hn::Set(d, inv[0]);
    const auto vs = per_element ? hn::LoadU(d, scale + i) : hn::Set(d, scale[0]);
    hn::StoreU(hn::Mul(RoundE4M3Vec(d, hn::Mul(hn::LoadU(d, x + i), vi)), vs), d, out + i);
  }
  for (; i < n; ++i) {
    const int64_t j = per_element ? i : 0;
    out[i] = RoundE4M3(x[i] * inv[j]) * scale[j];
  }
}

bool AbsMaxIntoImpl(const float* x, float* m, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  auto poison = hn::Zero(d);  // x * 0 is NaN exactly when x is inf or NaN
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    hn::StoreU(hn::Max(hn::LoadU(d, m + i), hn::Abs(v)), d, m + i);
    poison = hn::MulAdd(v, hn::Zero(d), poison);
  }
  float p = hn::GetLane(hn::SumOfLanes(d, poison));
  for (; i < n; ++i) m[i] = std::max(m[i], std::fabs(x[i])), p += x[i] * 0.0f;
  return p == 0.0f;
}

float AbsMaxImpl(const float* x, int64_t n, bool* finite) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  auto acc = hn::Zero(d), poison = hn::Zero(d);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    acc = hn::Max(acc, hn::Abs(v));
    poison = hn::MulAdd(v, hn::Zero(d), poison);
  }
  float m = hn::GetLane(hn::MaxOfLanes(d, acc)), p = hn::GetLane(hn::SumOfLanes(d, poison));
  for (; i < n; ++i) m = std::max(m, std::fabs(x[i])), p += x[i] * 0.0f;
  *finite = p == 0.0f;
  return m;
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::train
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::train {

HWY_EXPORT(ExpShiftSumImpl);
HWY_EXPORT(RowMaxImpl);
HWY_EXPORT(ScaleRowImpl);
HWY_EXPORT(RoundE4M3RowImpl);
HWY_EXPORT(SiluMulRowImpl);
HWY_EXPORT(SiluMulBackwardRowImpl);

void SiluMulRow(const float* gate, const float* up, float* act, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMulRowImpl)(gate, up, act, n);
}
void SiluMulBackwardRow(const float* dact, const float* gate, const float* up, float* dgate, float* dup, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMulBackwardRowImpl)(dact, gate, up, dgate, dup, n);
}
HWY_EXPORT(AbsMaxIntoImpl);
HWY_EXPORT(AbsMaxImpl);

void RoundE4M3Row(const float* x, float* out, int64_t n, const float* inv, const float* scale, bool per_element) {
  HWY_DYNAMIC_DISPATCH(RoundE4M3RowImpl)(x, out, n, inv, scale, per_element);
}
bool AbsMaxInto(const float* x, float* m, int64_t n) { return HWY_DYNAMIC_DISPATCH(AbsMaxIntoImpl)(x, m, n); }
float AbsMax(const float* x, int64_t n, bool* finite) { return HWY_DYNAMIC_DISPATCH(AbsMaxImpl)(x, n, finite); }

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
