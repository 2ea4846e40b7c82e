// Element-wise and row-wise kernels (dot, axpy, RMSNorm, SiLU product,
// interleaved RoPE, softmax) in float32; see kernels.h. Sums use several
// vector accumulators, so they differ from the sequential scalar twins only
// in rounding order. exp() is Highway's contrib polynomial (a few ulp).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/elementwise.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

float DotImpl(const float* a, const float* b, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), s1);
    s2 = hn::MulAdd(hn::LoadU(df, a + i + 2 * N), hn::LoadU(df, b + i + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(df, a + i + 3 * N), hn::LoadU(df, b + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AxpyImpl(float a, const float* x, float* y, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF av = hn::Set(df, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(av, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void AddImpl(const float* x, float* y, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += x[i];
}

void RmsNormImpl(const float* x, int64_t x_stride, const float* weight, float eps, float* out, int64_t out_stride,
                 int64_t n, int64_t d) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * x_stride;
    float* ot = out + t * out_stride;
    const float ss = DotImpl(xt, xt, d);
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
    const VF iv = hn::Set(df, inv);
    int64_t i = 0;
    for (; i + N <= d; i += N)
      hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, xt + i), iv), hn::LoadU(df, weight + i)), df, ot + i);
    for (; i < d; ++i) ot[i] = xt[i] * inv * weight[i];
  }
}

void SiluMulImpl(float* gate, const float* up, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF one = hn::Set(df, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VF g = hn::LoadU(df, gate + i);
    const VF s = hn::Div(g, hn::Add(one, hn::Exp(df, hn::Neg(g))));
    hn::StoreU(hn::Mul(s, hn::LoadU(df, up + i)), df, gate + i);
  }
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void RopeImpl(float* x, const float* cos, const float* sin, int64_t dim) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN float cd[64], sd[64];  // cos/sin per element, sin negated on even lanes
  int64_t i = 0;
  for (; i + N <= dim && N <= 64; i += N) {
    for (int64_t e = 0; e < N; ++e) {
      cd[e] = cos[(i + e) / 2];
      sd[e] = (e % 2 == 0) ? -sin[(i + e) / 2] : sin[(i + e) / 2];
    }
    const VF v = hn::LoadU(df, x + i);
    // (a, b) -> (a cos - b sin, b cos + a sin): v * cos + swap(v) * (-sin, sin)
    hn::StoreU(hn::MulAdd(hn::Shuffle2301(v), hn::Load(df, sd), hn::Mul(v, hn::Load(df, cd))), df, x + i);
  }
  for (; i + 1 < dim; i += 2) {
    const float a = x[i], b = x[i + 1], c = cos[i / 2], s = sin[i / 2];
    x[i] = a * c - b * s;
    x[i + 1] = a * s + b * c;
  }
}

void SoftmaxImpl(float* x, int64_t n) {
  if (n <= 0) return;
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  float m = x[0];
  int64_t i = 0;
  if (n >= N) {
    VF mv = hn::LoadU(df, x);
    for (i = N; i + N <= n; i += N) mv = hn::Max(mv, hn::LoadU(df, x + i));
    m = hn::GetLane(hn::MaxOfLanes(df, mv));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  const VF mv = hn::Set(df, m);
  VF sv = hn::Zero(df);
  for (i = 0; i + N <= n; i += N) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), mv));
    hn::StoreU(e, df, x + i);
    sv = hn::Add(sv, e);
  }
  float s = hn::GetLane(hn::SumOfLanes(df, sv));
  for (; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  const VF inv = hn::Set(df, 1.0f / s);
  for (i = 0; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), inv), df, x + i);
  for (; i < n; ++i) x[i] *= 1.0f / s;
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(AddImpl);
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(RopeImpl);
HWY_EXPORT(SoftmaxImpl);

float Dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }
void Axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, y, n); }
void Add(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(AddImpl)(x, y, n); }
void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out, int64_t out_stride,
             int64_t n, int64_t d) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, x_stride, weight, eps, out, out_stride, n, d);
}
void SiluMul(float* gate, const float* up, int64_t n) { HWY_DYNAMIC_DISPATCH(SiluMulImpl)(gate, up, n); }
void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim) {
  HWY_DYNAMIC_DISPATCH(RopeImpl)(x, cos, sin, dim);
}
void Softmax(float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n); }

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
