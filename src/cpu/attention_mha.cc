// MLA attention in the decompressed ("naive") form, for prefill: the keys
// and values of a chunk of cache rows have been expanded per head by
// kv_b_proj (k_nope, v [H, dn+dv] per row), so a (query, key, head) costs
// 2 (dn + dr) + 2 dv flops instead of the absorbed form's 2 (rc + dr) + 2 rc
// (640 against 2176 for DeepSeek-V3's shapes). One call handles one head,
// a run of consecutive query tokens and one chunk of keys, updating each
// query's streaming-softmax state (running max, sum, unnormalised output)
// so that any context is processed in chunks of bounded size. The products
// are register-blocked like a small GEMM: the head's keys are transposed
// once per call to [dn+dr, keys], so scores for a tile of queries x key
// vectors take one broadcast of a query value per dimension and query, and
// the weighted values for a tile of queries x value vectors one broadcast per
// key and query; each broadcast feeds several FMAs. Keys past a tile's causal
// window are skipped. Exp is vectorised (hwy contrib).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/attention_mha.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/kernels.h"
#include "cpu/softmax-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Register tiles: kTile queries x kKeyVecs key vectors for the scores and
// kTile queries x kValVecs value vectors for the outputs. On AVX-512 that
// is 6 x 4 = 24 accumulators plus four loaded vectors and a broadcast of the
// 32 registers, one broadcast feeding four FMAs; on AVX2, 6 x 2 of 16.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kTile = 6, kKeyVecs = 4, kValVecs = 4;
#else
constexpr int64_t kTile = 6, kKeyVecs = 2, kValVecs = 2;
#endif

// Kt [dk, kp] = the head's keys, transposed: rows 0..dn from k_nope, dn..dk
// from k_pe; columns jn..kp are zero so the score tiles need no tail.
void TransposeKeys(const MhaShape& s, int64_t h, const MhaKeys& keys, int64_t kp, float* Kt) {
  const int64_t dk = s.dn + s.dr;
  for (int64_t k = 0; k < dk; ++k) std::fill(Kt + k * kp + keys.jn, Kt + (k + 1) * kp, 0.0f);
  for (int64_t j = 0; j < keys.jn; ++j) {
    const float* kn = keys.kv + j * keys.kv_stride + h * (s.dn + s.dv);  // k_nope [dn]
    const float* kr = keys.k_pe + j * keys.pe_stride;                     // k_pe [dr]
    for (int64_t k = 0; k < s.dn; ++k) Kt[k * kp + j] = kn[k];
    for (int64_t k = 0; k < s.dr; ++k) Kt[(s.dn + k) * kp + j] = kr[k];
  }
}

// S [T, kp] = scale * q_t . Kt[:, j] for T queries (q_stride apart, dk values
// each) and columns j < jend (a multiple of the key tile, <= kp).
template <int64_t T>
HWY_INLINE void TileScores(const float* q, int64_t q_stride, int64_t dk, const float* Kt, int64_t kp, int64_t jend,
                           float scale, float* S) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF sv = hn::Set(df, scale);
  for (int64_t j = 0; j < jend; j += kKeyVecs * N) {
    VF acc[T][kKeyVecs];
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < kKeyVecs; ++c) acc[t][c] = hn::Zero(df);
    for (int64_t k = 0; k < dk; ++k) {
      VF kv[kKeyVecs];
      for (int64_t c = 0; c < kKeyVecs; ++c) kv[c] = hn::LoadU(df, Kt + k * kp + j + c * N);
      for (int64_t t = 0; t < T; ++t) {
        const VF qv = hn::Set(df, q[t * q_stride + k]);
        for (int64_t c = 0; c < kKeyVecs; ++c) acc[t][c] = hn::MulAdd(qv, kv[c], acc[t][c]);
      }
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < kKeyVecs; ++c) hn::StoreU(hn::Mul(acc[t][c], sv), df, S + t * kp + j + c * N);
  }
}

// o_t [dv] += sum_j P[t][j] v_j for T queries over jv keys; v_j rows are
// v_stride apart. kValVecs value vectors per pass, then one, then scalars.
template <int64_t T>
HWY_INLINE void TileValues(const float* P, int64_t kp, int64_t jv, const float* v, int64_t v_stride, int64_t dv,
                           float* o, int64_t o_stride) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t d = 0;
  for (; d + kValVecs * N <= dv; d += kValVecs * N) {
    VF acc[T][kValVecs];
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < kValVecs; ++c) acc[t][c] = hn::LoadU(df, o + t * o_stride + d + c * N);
    for (int64_t j = 0; j < jv; ++j) {
      VF vv[kValVecs];
      for (int64_t c = 0; c < kValVecs; ++c) vv[c] = hn::LoadU(df, v + j * v_stride + d + c * N);
      for (int64_t t = 0; t < T; ++t) {
        const VF p = hn::Set(df, P[t * kp + j]);
        for (int64_t c = 0; c < kValVecs; ++c) acc[t][c] = hn::MulAdd(p, vv[c], acc[t][c]);
      }
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < kValVecs; ++c) hn::StoreU(acc[t][c], df, o + t * o_stride + d + c * N);
  }
  for (; d + N <= dv; d += N) {
    VF acc[T];
    for (int64_t t = 0; t < T; ++t) acc[t] = hn::LoadU(df, o + t * o_stride + d);
    for (int64_t j = 0; j < jv; ++j) {
      const VF v0 = hn::LoadU(df, v + j * v_stride + d);
      for (int64_t t = 0; t < T; ++t) acc[t] = hn::MulAdd(hn::Set(df, P[t * kp + j]), v0, acc[t]);
    }
    for (int64_t t = 0; t < T; ++t) hn::StoreU(acc[t], df, o + t * o_stride + d);
  }
  // Explicit fma, as in the vector loops: left to the compiler, contraction
  // could differ between tile heights, and a query's result must not depend
  // on which tile (thread split) it fell in.
  for (; d < dv; ++d)
    for (int64_t t = 0; t < T; ++t) {
      float a = o[t * o_stride + d];
      for (int64_t j = 0; j < jv; ++j) a = std::fma(P[t * kp + j], v[j * v_stride + d], a);
      o[t * o_stride + d] = a;
    }
}

// The streaming-softmax step of one query over its `valid` keys of the chunk:
// p [jend] becomes exp(score - new max) (zero past `valid`), the running sum is
// updated and the output o [dv] rescaled to the new max.
HWY_INLINE void SoftmaxRow(DF df, float* p, int64_t valid, int64_t jend, float* mx, float* sum, float* o, int64_t dv) {
  float m = *mx;
  for (int64_t j = 0; j < valid; ++j) m = std::max(m, p[j]);
  const float add = ExpShiftSum(df, p, valid, m);
  std::fill(p + valid, p + jend, 0.0f);
  const float alpha = std::exp(*mx - m);  // 0 on the first chunk (max -inf)
  *sum = std::fma(*sum, alpha, add);  // explicit: the same in every tile height's inlined copy
  *mx = m;
  if (alpha != 1.0f) Scale(df, alpha, o, dv);
}

// One tile of T queries (the first at position pos0): scores, softmax step,
// weighted values.
template <int64_t T>
void Tile(const MhaShape& s, int64_t h, const float* q, int64_t q_stride, int64_t pos0, const MhaKeys& keys,
          const float* Kt, int64_t kp, float* mx, float* sum, float* o, int64_t o_stride, float* S) {
  const DF df;
  const int64_t dk = s.dn + s.dr, width = kKeyVecs * static_cast<int64_t>(hn::Lanes(df));
  // Keys past the last query's window are skipped (half the diagonal chunk).
  const int64_t jv = std::min(keys.jn, pos0 + T - keys.j0);  // keys any query of the tile sees
  const int64_t jend = (jv + width - 1) / width * width;
  TileScores<T>(q, q_stride, dk, Kt, kp, jend, s.scale, S);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t valid = std::min(keys.jn, pos0 + t + 1 - keys.j0);
    SoftmaxRow(df, S + t * kp, valid, jend, mx + t * s.heads, sum + t * s.heads, o + t * o_stride, s.dv);
  }
  const float* v = keys.kv + h * (s.dn + s.dv) + s.dn;  // v_j [dv], kv_stride apart
  TileValues<T>(S, kp, jv, v, keys.kv_stride, s.dv, o, o_stride);
}

void TileAny(int64_t T, const MhaShape& s, int64_t h, const float* q, int64_t q_stride, int64_t pos0,
             const MhaKeys& keys, const float* Kt, int64_t kp, float* mx, float* sum, float* o, int64_t o_stride,
             float* S) {
  static_assert(kTile == 6, "one case per tile height");
  switch (T) {
    case 6: return Tile<6>(s, h, q, q_stride, pos0, keys, Kt, kp, mx, sum, o, o_stride, S);
    case 5: return Tile<5>(s, h, q, q_stride, pos0, keys, Kt, kp, mx, sum, o, o_stride, S);
    case 4: return Tile<4>(s, h, q, q_stride, pos0, keys, Kt, kp, mx, sum, o, o_stride, S);
    case 3: return Tile<3>(s, h, q, q_stride, pos0, keys, Kt, kp, mx, sum, o, o_stride, S);
    case 2: return Tile<2>(s, h, q, q_stride, pos0, keys, Kt, kp, mx, sum, o, o_stride, S);
    default: return Tile<1>(s, h, q, q_stride, pos0, keys, Kt, kp, mx, sum, o, o_stride, S);
  }
}

// Queries 0..m-1 at positions p0.. of head h against one chunk of keys; every
// query must see at least the chunk's first key (p0 >= keys.j0).
void MhaAttendChunkImpl(const MhaShape& s, int64_t h, const float* q, int64_t q_stride, int64_t m, int64_t p0,
                        const MhaKeys& keys, float* mx, float* sum, float* o, int64_t o_stride, float* scratch) {
  const DF df;
  const int64_t width = kKeyVecs * static_cast<int64_t>(hn::Lanes(df));
  const int64_t kp = (keys.jn + width - 1) / width * width;
  float* Kt = scratch;                    // Kt [dn+dr, kp]
  float* S = Kt + (s.dn + s.dr) * kp;     // S [kTile, kp]
  TransposeKeys(s, h, keys, kp, Kt);
  const int64_t dq = s.dn + s.dr;
  for (int64_t i = 0; i < m; i += kTile) {
    const int64_t T = std::min(kTile, m - i);
    TileAny(T, s, h, q + i * q_stride + h * dq, q_stride, p0 + i, keys, Kt, kp, mx + i * s.heads + h,
            sum + i * s.heads + h, o + i * o_stride + h * s.dv, o_stride, S);
  }
}

// e4m3 bytes -> floats * 2^-120 in natural order (see matmul.cc for the trick).
HWY_INLINE VF LoadF8(DF df, const uint8_t* p) {
  const hn::Rebind<int8_t, DF> d8;
  const hn::RebindToSigned<DF> di;
  const auto v = hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(p)));
  return hn::BitCast(df, hn::And(hn::ShiftLeft<20>(v), hn::Set(di, static_cast<int32_t>(0x87F00000u))));
}

// out [jn, rc+dr] = cache rows j0.., as float32 (e4m3 rows times their
// latent / rotary scales).
void DecodeLatentRowsImpl(const LatentRows& rows, int64_t rc, int64_t dr, int64_t j0, int64_t jn, float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df)), lat = rc + dr;
  for (int64_t j = 0; j < jn; ++j) {
    float* dst = out + j * lat;
    if (!rows.f8) {
      std::memcpy(dst, rows.f32 + (j0 + j) * rows.stride, lat * sizeof(float));
      continue;
    }
    const uint8_t* src = rows.f8 + (j0 + j) * rows.stride;
    const float up = std::ldexp(1.0f, 120);
    for (int64_t part = 0; part < 2; ++part) {
      const int64_t k0 = part ? rc : 0, k1 = part ? lat : rc;
      const float sc = rows.f8_scale[2 * (j0 + j) + part] * up;
      const VF sv = hn::Set(df, sc);
      int64_t k = k0;
      for (; k + N <= k1; k += N) hn::StoreU(hn::Mul(LoadF8(df, src + k), sv), df, dst + k);
      for (; k < k1; ++k) dst[k] = F8E4M3ToF32(src[k]) * (sc / up);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(MhaAttendChunkImpl);
HWY_EXPORT(DecodeLatentRowsImpl);

// Kt [dn+dr, kp] and S [kTile <= 8, kp] with kp <= jn rounded up to 128 (wider than
// any x86 target's key tile).
int64_t MhaScratchFloats(const MhaShape& s, int64_t jn) {
  const int64_t kp = (jn + 127) / 128 * 128;
  return (s.dn + s.dr + 8) * kp + 64;
}

void MhaAttendChunk(const MhaShape& s, int64_t h, const float* q, int64_t q_stride, int64_t m, int64_t p0,
                    const MhaKeys& keys, float* mx, float* sum, float* o, int64_t o_stride, float* scratch) {
  HWY_DYNAMIC_DISPATCH(MhaAttendChunkImpl)(s, h, q, q_stride, m, p0, keys, mx, sum, o, o_stride, scratch);
}

void DecodeLatentRows(const LatentRows& rows, int64_t rc, int64_t dr, int64_t j0, int64_t jn, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeLatentRowsImpl)(rows, rc, dr, j0, jn, out);
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
