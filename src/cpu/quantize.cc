// Float32 -> FP8 e4m3fn encoding, vectorised: round to nearest even,
// saturating to +-448, NaN -> 0x7f, exactly as the scalar reference
// F32ToF8E4M3 (core/dtype.h). Normal results round the float's mantissa to
// 3 bits in the integer domain and rebias the exponent; results below 2^-6
// are multiples of 2^-9 and come from rounding |x| * 512 to an integer
// (8 lands on the smallest normal, 0x08, as it should).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/quantize.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

float AbsMaxImpl(const float* x, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF m = hn::Zero(df);
  int64_t i = 0;
  for (; i + N <= n; i += N) m = hn::Max(m, hn::Abs(hn::LoadU(df, x + i)));
  float r = hn::GetLane(hn::MaxOfLanes(df, m));
  for (; i < n; ++i) r = std::max(r, std::fabs(x[i]));
  return r;
}

void EncodeF8Impl(const float* x, int64_t n, float scale, uint8_t* out) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint8_t, DF> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF s = hn::Set(df, scale);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto u = hn::BitCast(di, hn::Div(hn::LoadU(df, x + i), s));
    const auto sign = hn::And(hn::ShiftRight<24>(u), hn::Set(di, 0x80));
    const auto au = hn::And(u, hn::Set(di, 0x7fffffff));
    // Normal: round the mantissa to 3 bits (nearest even), rebias 127 -> 7.
    const auto r = hn::Add(au, hn::Add(hn::Set(di, 0x7ffff), hn::And(hn::ShiftRight<20>(au), hn::Set(di, 1))));
    const auto normal = hn::Sub(hn::ShiftRight<20>(r), hn::Set(di, 120 << 3));
    // Subnormal: |x| * 2^9 rounded to an integer (nearest even).
    const auto sub = hn::ConvertTo(di, hn::Round(hn::Mul(hn::BitCast(df, au), hn::Set(df, 512.0f))));
    auto code = hn::IfThenElse(hn::Lt(au, hn::Set(di, 0x3c800000)), sub, normal);     // < 2^-6
    code = hn::IfThenElse(hn::Lt(au, hn::Set(di, 0x43e00000)), code, hn::Set(di, 0x7e));  // >= 448
    code = hn::Or(code, sign);
    code = hn::IfThenElse(hn::Gt(au, hn::Set(di, 0x7f800000)), hn::Set(di, 0x7f), code);  // NaN
    hn::StoreU(hn::DemoteTo(d8, code), d8, out + i);
  }
  for (; i < n; ++i) out[i] = F32ToF8E4M3(x[i] / scale);
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(AbsMaxImpl);
HWY_EXPORT(EncodeF8Impl);

float AbsMax(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(AbsMaxImpl)(x, n); }
void EncodeF8E4M3(const float* x, int64_t n, float scale, uint8_t* out) {
  HWY_DYNAMIC_DISPATCH(EncodeF8Impl)(x, n, scale, out);
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
