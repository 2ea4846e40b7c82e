// The K-quant encoders (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) with the arithmetic of
// ggml's quantize_row_q*_K_ref; see core/ggml_quants.h. Per 16- or 32-value
// sub-block a scale (and for Q2/Q4/Q5 a min) is searched, the scales are
// quantized under the block's f16 super-scale(s), then the levels are taken
// again against the stored scales. Compiled with -ffp-contract=off.
#include <algorithm>
#include <cmath>

#include "core/ggml_quantize_common.h"
#include "core/ggml_quants.h"

namespace dsv3 {

namespace {

using ggml_encode::kGroupMaxEps;
using ggml_encode::NearestInt;
using ggml_encode::StoreHalf;

// Weighted error of levels L against x for scale and min.
float LevelError(const float* x, const float* w, const uint8_t* L, int n, float scale, float min, bool mad) {
  float err = 0.0f;
  for (int i = 0; i < n; ++i) {
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = mad ? std::fabs(diff) : diff * diff;
    err += w[i] * diff;
  }
  return err;
}

// Scale and min (returned negated in *the_min) of levels 0..nmax for x:
// start from the range, then try nstep+1 stretched grids, each refitted by
// weighted least squares, keeping the least weighted error (ggml's
// make_qkx2_quants).
float FitScaleMin(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, float rmin,
                  float rdelta, int nstep, bool mad) {
  float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]), max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min), scale = 1.0f / iscale;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(std::clamp(NearestInt(iscale * (x[i] - min)), 0, nmax));
  float best = LevelError(x, w, L, n, scale, min, mad);
  uint8_t aux[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;  // as ggml: skip unless positive (NaN too)
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) this_min = 0, this_scale = sum_xl / sum_l2;
    const float err = LevelError(x, w, aux, n, this_scale, this_min, mad);
    if (err < best) {
      std::copy(aux, aux + n, L);
      best = err, scale = this_scale, min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

// FitScaleMin(32, nmax, ..., mad = false) for the 8 sub-blocks of a K-quant
// block at once, lane j = sub-block j, x and w transposed ([i][j]): every
// lane runs exactly FitScaleMin's sequence of IEEE float operations (same
// order, no contraction) in GCC vector types (8 floats). The Q4_K/Q5_K
// encoders spend nearly all their time here.
constexpr int kLanes = 8;
typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));
using LaneF = float[kLanes];

inline V8f LoadV(const float* p) {
  V8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline V8f Splat(float f) { return V8f{} + f; }
inline V8i SplatI(int i) { return V8i{} + i; }
inline V8i ClampLevels(V8f v, int nmax) {  // clamp(NearestInt(v), 0, nmax), NearestInt as ggml's
  V8i i = reinterpret_cast<V8i&>(v += 12582912.0f);
  i = (i & 0x007fffff) - 0x00400000;
  i = i < 0 ? SplatI(0) : i;
  return i > nmax ? SplatI(nmax) : i;
}
inline V8f Levels8(const uint8_t* L) {
  V8f f;
  for (int j = 0; j < kLanes; ++j) f[j] = static_cast<float>(L[j]);
  return f;
}

// sum_i w * (scale * L + min - x)^2 per lane, in FitScaleMin's order.
V8f LevelError8(const LaneF* x, const LaneF* w, const uint8_t (*L)[kLanes], V8f scale, V8f min) {
  V8f err = Splat(0.0f);
  for (int i = 0; i < 32; ++i) {
    V8f diff = scale * Levels8(L[i]) + min - LoadV(x[i]);
    diff = diff * diff;
    err += LoadV(w[i]) * diff;
  }
  return err;
}

void FitScaleMin8(int nmax, const LaneF* x, const LaneF* w, uint8_t (*L)[kLanes], float* scale_out, float* the_min,
                  float rmin, float rdelta, int nstep) {
  V8f mn = LoadV(x[0]), mx = mn, sum_w = LoadV(w[0]), sum_x = sum_w * mn;
  for (int i = 1; i < 32; ++i) {
    const V8f xi = LoadV(x[i]), wi = LoadV(w[i]);
    mn = xi < mn ? xi : mn, mx = mx < xi ? xi : mx;  // std::min / std::max
    sum_w += wi;
    sum_x += wi * xi;
  }
  mn = mn > 0.0f ? Splat(0.0f) : mn;
  V8f iscale = Splat(static_cast<float>(nmax)) / (mx - mn), scale = Splat(1.0f) / iscale;
  for (int i = 0; i < 32; ++i) {
    const V8i l = ClampLevels(iscale * (LoadV(x[i]) - mn), nmax);
    for (int j = 0; j < kLanes; ++j) L[i][j] = static_cast<uint8_t>(l[j]);
  }
  V8f best = LevelError8(x, w, L, scale, mn);
  uint8_t aux[32][kLanes];
  for (int is = 0; is <= nstep; ++is) {
    iscale = Splat(rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (mx - mn);
    V8f sum_l = Splat(0.0f), sum_l2 = sum_l, sum_xl = sum_l;
    for (int i = 0; i < 32; ++i) {
      const V8f xi = LoadV(x[i]), wi = LoadV(w[i]);
      const V8i l = ClampLevels(iscale * (xi - mn), nmax);
      for (int j = 0; j < kLanes; ++j) aux[i][j] = static_cast<uint8_t>(l[j]);
      const V8f fl = __builtin_convertvector(l, V8f);
      sum_l += wi * fl;
      sum_l2 += wi * fl * fl;
      sum_xl += wi * fl * xi;
    }
    const V8f D = sum_w * sum_l2 - sum_l * sum_l;
    V8f ts = (sum_w * sum_xl - sum_x * sum_l) / D, tm = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    const auto pos = tm > 0.0f;
    ts = pos ? sum_xl / sum_l2 : ts;
    tm = pos ? Splat(0.0f) : tm;
    const V8f err = LevelError8(x, w, aux, ts, tm);
    const auto take = (D > 0.0f) & (err < best);  // as ggml: a fit counts only when D > 0 (not NaN)
    best = take ? err : best, scale = take ? ts : scale, mn = take ? tm : mn;
    for (int j = 0; j < kLanes; ++j)
      if (take[j])
        for (int i = 0; i < 32; ++i) L[i][j] = aux[i][j];
  }
  // A flat sub-block (max == min) gets what FitScaleMin returns early: its
  // levels are NearestInt(inf * 0) = 0, no fit is valid (D = 0), and its
  // scale is 1 / inf = 0.
  for (int j = 0; j < kLanes; ++j) the_min[j] = -mn[j], scale_out[j] = scale[j];
}

float SignedMax(const float* x, int n, float* amax) {
  float m = 0.0f;
  *amax = 0.0f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > *amax) *amax = std::fabs(x[i]), m = x[i];
  return m;
}

// Symmetric levels -nmax..nmax-1 (stored +nmax) weighted by x^2, with 18
// nudged scales tried (ggml's make_qx_quants, rmse_type 1).
float FitSymmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = SignedMax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  auto sums = [&](float iscale, float* slx, float* sl2, bool store) {
    *slx = 0, *sl2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      if (store) L[i] = static_cast<int8_t>(l + nmax);
      const float w = x[i] * x[i], fl = static_cast<float>(l);
      *slx += w * x[i] * fl;
      *sl2 += w * fl * fl;
    }
  };
  float sumlx, suml2;
  sums(static_cast<float>(-nmax) / max, &sumlx, &suml2, true);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f, best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, &sumlx, &suml2, false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      sums(iscale, &sumlx, &suml2, true);
      scale = sumlx / suml2, best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's per-16 fit: levels -4..3 refined coordinate-wise for up to 5
// rounds (ggml's make_q3_quants with do_rmse); L stored +4.
float FitQ3(const float* x, int8_t* L) {
  constexpr int kN = 16, kMax = 4;
  float amax;
  const float max = SignedMax(x, kN, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + kN, 0);
    return 0.0f;
  }
  const float iscale = static_cast<float>(-kMax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < kN; ++i) {
    const int l = std::clamp(NearestInt(iscale * x[i]), -kMax, kMax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < kN; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
      const int nl = std::clamp(NearestInt(x[i] * sl2 / slx), -kMax, kMax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * static_cast<float>(nl);
      sl2 += w * static_cast<float>(nl) * static_cast<float>(nl);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<int8_t>(nl), sumlx = slx, suml2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < kN; ++i) L[i] = static_cast<int8_t>(L[i] + kMax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// 2-bit levels of 256 values into qs[64] (elements j, j+32, j+64, j+96 of
// each half in one byte).
void Pack2Bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* p = L + 128 * h + l;
      qs[32 * h + l] = static_cast<uint8_t>(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
    }
}

}  // namespace

void QuantizeQ2K(const float* x, uint8_t* b) {
  uint8_t L[256];
  float w[16], mins[16], scales[16], max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
    scales[j] = FitScaleMin(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
    max_scale = std::max(max_scale, scales[j]), max_min = std::max(max_min, mins[j]);
  }
  uint8_t* sc = b;  // scales[16] @0, qs @16, d @80, dmin @82
  if (max_scale > 0) {
    const float iscale = 15.0f / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(NearestInt(iscale * scales[j]));
    StoreHalf(max_scale / 15.0f, b + 80);
  } else {
    std::fill(sc, sc + 16, 0);
    StoreHalf(0.0f, b + 80);
  }
  if (max_min > 0) {
    const float iscale = 15.0f / max_min;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(sc[j] | (NearestInt(iscale * mins[j]) << 4));
    StoreHalf(max_min / 15.0f, b + 82);
  } else {
    StoreHalf(0.0f, b + 82);
  }
  for (int j = 0; j < 16; ++j) {
    const float d = LoadHalf(b + 80) * static_cast<float>(sc[j] & 0xF);
    if (d == 0.0f) continue;
    const float dm = LoadHalf(b + 82) * static_cast<float>(sc[j] >> 4);
    for (int i = 0; i < 16; ++i) L[16 * j + i] = static_cast<uint8_t>(std::clamp(NearestInt((x[16 * j + i] + dm) / d), 0, 3));
  }
  Pack2Bit(L, b + 16);
}

void QuantizeQ3K(const float* x, uint8_t* b) {
  int8_t L[256];
  float scales[16], max_scale = 0, amax = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = FitQ3(x + 16 * j, L + 16 * j);
    if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
  }
  uint8_t* sc = b + 96;  // hmask @0, qs @32, scales[12] @96, d @108
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int l = std::clamp(static_cast<int>(static_cast<int8_t>(NearestInt(iscale * scales[j]))), -32, 31) + 32;
      if (j < 8) sc[j] = static_cast<uint8_t>(l & 0xF);
      else sc[j - 8] = static_cast<uint8_t>(sc[j - 8] | ((l & 0xF) << 4));
      sc[8 + j % 4] = static_cast<uint8_t>(sc[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
    }
    StoreHalf(1.0f / iscale, b + 108);
  } else {
    StoreHalf(0.0f, b + 108);
  }
  int8_t s16[16];
  Q3KScales(sc, s16);
  for (int j = 0; j < 16; ++j) {
    const float d = LoadHalf(b + 108) * static_cast<float>(s16[j]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::clamp(NearestInt(x[16 * j + i] / d), -4, 3) + 4);
  }
  uint8_t U[256];
  for (int j = 0; j < 256; ++j) {  // high bit of element j: hmask[j % 32] bit j / 32
    if (L[j] > 3) b[j % 32] = static_cast<uint8_t>(b[j % 32] | (1u << (j / 32))), L[j] = static_cast<int8_t>(L[j] - 4);
    U[j] = static_cast<uint8_t>(L[j]);
  }
  Pack2Bit(U, b + 32);
}

// Q4_K (five = false: levels 0..15) and Q5_K (0..31, fifth bit in qh).
void QuantizeQ45K(const float* x, uint8_t* b, bool five) {
  const int nmax = five ? 31 : 15;
  uint8_t L[256], LT[32][kLanes];
  float xT[32][kLanes], wT[32][kLanes], mins[8], scales[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {  // sub-block j in lane j: its weights av_x + |x|
    const float* xj = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int l = 0; l < 32; ++l) xT[l][j] = xj[l], wT[l][j] = av_x + std::fabs(xj[l]);
  }
  FitScaleMin8(nmax, xT, wT, LT, scales, mins, five ? -0.5f : -1.0f, 0.1f, five ? 15 : 20);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) L[32 * j + l] = LT[l][j];
    max_scale = std::max(max_scale, scales[j]), max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t* sc = b + 4;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_min * mins[j])));
    if (j < 4) {
      sc[j] = ls, sc[j + 4] = lm;
    } else {
      sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] = static_cast<uint8_t>(sc[j - 4] | ((ls >> 4) << 6));
      sc[j] = static_cast<uint8_t>(sc[j] | ((lm >> 4) << 6));
    }
  }
  StoreHalf(max_scale / 63.0f, b);
  StoreHalf(max_min / 63.0f, b + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    KScaleMin(j, sc, &s, &m);
    const float d = LoadHalf(b) * static_cast<float>(s);
    if (d == 0.0f) continue;
    const float dm = LoadHalf(b + 2) * static_cast<float>(m);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(NearestInt((x[32 * j + i] + dm) / d), 0, nmax));
  }
  uint8_t* qh = b + 16;  // Q5_K only
  uint8_t* qs = b + (five ? 48 : 16);
  for (int g = 0; g < 4; ++g, qs += 32)
    for (int j = 0; j < 32; ++j) {
      int l1 = L[64 * g + j], l2 = L[64 * g + 32 + j];
      if (five && l1 > 15) l1 -= 16, qh[j] = static_cast<uint8_t>(qh[j] | (1u << (2 * g)));
      if (five && l2 > 15) l2 -= 16, qh[j] = static_cast<uint8_t>(qh[j] | (2u << (2 * g)));
      qs[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
}

void QuantizeQ6K(const float* x, uint8_t* b) {
  int8_t L[256];
  float scales[16], max_scale = 0, max_abs = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = FitSymmetric(16, 32, x + 16 * ib, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs) max_abs = std::fabs(scales[ib]), max_scale = scales[ib];
  }
  if (max_abs < kGroupMaxEps) return;  // all zero: the caller zeroed the block
  const float iscale = -128.0f / max_scale;
  StoreHalf(1.0f / iscale, b + 208);
  int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[ib])));
  for (int j = 0; j < 16; ++j) {
    const float d = LoadHalf(b + 208) * static_cast<float>(sc[j]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::clamp(NearestInt(x[16 * j + i] / d), -32, 31) + 32);
  }
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = b + 64 * h;
    uint8_t* qh = b + 128 + 32 * h;
    const int8_t* p = L + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((p[l] & 0xF) | ((p[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((p[l + 32] & 0xF) | ((p[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((p[l] >> 4) | ((p[l + 32] >> 4) << 2) | ((p[l + 64] >> 4) << 4) | ((p[l + 96] >> 4) << 6));
    }
  }
}

}  // namespace dsv3
