// MLA forward/backward for training; see attention.h. Causal attention runs
// flash-style in blocks of Dims::attn_block queries x keys: blocks above the
// diagonal are skipped, and neither pass holds more than one block of scores
// per thread, so attention memory grows with T, not T^2.
#include "train/attention.h"

#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "train/gemm.h"
#include "train/layers.h"
#include "train/params.h"

namespace dsv3::train {

namespace {

template <typename V>
void Grow(V& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

// C [m, n] (ldc) (+)= op(A) op(B), single-threaded (callers split over heads).
void G(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
       float* c, int64_t ldc, bool acc) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k;
  g.a = a, g.lda = lda, g.b = b, g.ldb = ldb, g.c = c, g.ldc = ldc, g.accumulate = acc;
  GemmSerial(g);
}

// GEMM flops of the causal attention of one (sequence, head): per pair of
// query and key blocks on or below the diagonal, the forward's score and
// value products, and the backward's five (scores recomputed, dP, dq, dk, dv).
double CausalFlops(const Dims& m, bool backward) {
  const int64_t bs = m.attn_block;
  double f = 0.0;
  for (int64_t i0 = 0; i0 < m.T; i0 += bs) {
    const int64_t i1 = std::min(m.T, i0 + bs);
    for (int64_t j0 = 0; j0 < i1; j0 += bs) {
      const int64_t rows = i1 - i0, cols = std::min(i1, j0 + bs) - j0;
      f += backward ? 3 * GemmFlops(rows, cols, m.dq) + 2 * GemmFlops(rows, cols, m.dv)
                    : GemmFlops(rows, cols, m.dq) + GemmFlops(rows, cols, m.dv);
    }
  }
  return f;
}

// Pointers to one (sequence b, head h) slice of the attention tensors.
struct HeadView {
  const float *qn, *qp, *kn, *kp, *v;
  int64_t ldq, ldkv, ldkp;
  HeadView(const Dims& m, const MlaActs& a, int64_t b, int64_t h) {
    const int64_t r0 = b * m.T;
    ldq = m.H * m.dq, ldkv = m.H * (m.dn + m.dv), ldkp = m.lat;
    qn = a.q.data() + r0 * ldq + h * m.dq, qp = qn + m.dn;
    kn = a.kvb.data() + r0 * ldkv + h * (m.dn + m.dv), v = kn + m.dn;
    kp = a.kv.data() + r0 * ldkp + m.rc;
  }
};

// S [rows, cols] = scale * (q_nope k_nope^T + q_pe k_pe^T) for queries
// [i0, i0+rows) and keys [j0, j0+cols); keys after their query are -inf.
void BlockScores(const Dims& m, const HeadView& hv, int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* S) {
  G(false, true, rows, cols, m.dn, hv.qn + i0 * hv.ldq, hv.ldq, hv.kn + j0 * hv.ldkv, hv.ldkv, S, cols, false);
  G(false, true, rows, cols, m.dr, hv.qp + i0 * hv.ldq, hv.ldq, hv.kp + j0 * hv.ldkp, hv.ldkp, S, cols, true);
  for (int64_t r = 0; r < rows; ++r) {
    float* s = S + r * cols;
    const int64_t visible = std::clamp<int64_t>(i0 + r - j0 + 1, 0, cols);
    for (int64_t c = 0; c < visible; ++c) s[c] *= m.softmax_scale;
    std::fill(s + visible, s + cols, -INFINITY);
  }
}

// Flash-style forward of one (sequence, head): query blocks against key
// blocks with a running max and sum per row (online softmax), so scratch is
// one block of scores, never [T, T]. Keeps lse [T] = max + log(sum) per row
// for the backward, which recomputes the probabilities from it.
void AttendHead(const Dims& m, const HeadView& hv, float* o, int64_t ldo, float* lse) {
  const int64_t bs = m.attn_block;
  thread_local std::vector<float> S, mx, sum;
  Grow(S, bs * bs), Grow(mx, bs), Grow(sum, bs);
  for (int64_t i0 = 0; i0 < m.T; i0 += bs) {
    const int64_t i1 = std::min(m.T, i0 + bs), rows = i1 - i0;
    std::fill_n(mx.data(), rows, -INFINITY), std::fill_n(sum.data(), rows, 0.0f);
    for (int64_t r = 0; r < rows; ++r) std::fill_n(o + (i0 + r) * ldo, m.dv, 0.0f);
    for (int64_t j0 = 0; j0 < i1; j0 += bs) {
      const int64_t cols = std::min(i1, j0 + bs) - j0;
      BlockScores(m, hv, i0, rows, j0, cols, S.data());
      for (int64_t r = 0; r < rows; ++r) {
        float* s = S.data() + r * cols;
        float new_mx = mx[r];
        for (int64_t c = 0; c < cols; ++c) new_mx = std::max(new_mx, s[c]);
        if (new_mx == -INFINITY) continue;  // the whole block is after this query (p = 0)
        const float keep = std::exp(mx[r] - new_mx);  // rescales what earlier blocks summed
        float add = 0.0f;
        for (int64_t c = 0; c < cols; ++c) add += (s[c] = std::exp(s[c] - new_mx));
        sum[r] = sum[r] * keep + add, mx[r] = new_mx;
        if (keep != 1.0f)
          for (float *x = o + (i0 + r) * ldo, *e = x + m.dv; x < e; ++x) *x *= keep;
      }
      G(false, false, rows, m.dv, cols, S.data(), cols, hv.v + j0 * hv.ldkv, hv.ldkv, o + i0 * ldo, ldo, true);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float inv = 1.0f / sum[r];
      for (float *x = o + (i0 + r) * ldo, *e = x + m.dv; x < e; ++x) *x *= inv;
      lse[i0 + r] = mx[r] + std::log(sum[r]);
    }
  }
}

// o = causal softmax(scale * (q_nope k_nope^T + q_pe k_pe^T)) v per (sequence, head).
void AttendForward(const TrainContext& ctx, MlaActs& a) {
  const Dims& m = ctx.dims;
  const int64_t ldo = m.H * m.dv;
  ParallelFor(m.B * m.H, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / m.H, h = task % m.H;
      AttendHead(m, HeadView(m, a, b, h), a.o.data() + b * m.T * ldo + h * m.dv, ldo, a.lse.data() + task * m.T);
    }
  });
  ctx.lin->add_flops(CausalFlops(m, false) * m.B * m.H);
}

// Gradient outputs of one (sequence, head), strided into the scratch tensors.
struct HeadGrads {
  float *dqn, *dkn, *dv, *dkp;
  int64_t ldkp;
};

// Backward of one (sequence, head), block pair by block pair: P from the
// saved lse, dP = dO v^T, dS = P (dP - rowsum(dO o)) scale, then
// dq += dS k, dk += dS^T q, dv += P^T dO. Scratch: two blocks.
void AttendHeadBackward(const Dims& m, const HeadView& hv, const float* o, const float* dO, int64_t ldo,
                        const float* lse, const HeadGrads& g) {
  const int64_t bs = m.attn_block, T = m.T;
  thread_local std::vector<float> P, dS, delta;
  Grow(P, bs * bs), Grow(dS, bs * bs), Grow(delta, T);
  for (int64_t i = 0; i < T; ++i) {
    float dot = 0.0f;
    for (int64_t c = 0; c < m.dv; ++c) dot += dO[i * ldo + c] * o[i * ldo + c];
    delta[i] = dot;
    std::fill_n(g.dqn + i * hv.ldq, m.dq, 0.0f), std::fill_n(g.dkn + i * hv.ldkv, m.dn, 0.0f);
    std::fill_n(g.dv + i * hv.ldkv, m.dv, 0.0f), std::fill_n(g.dkp + i * g.ldkp, m.dr, 0.0f);
  }
  for (int64_t i0 = 0; i0 < T; i0 += bs) {
    const int64_t i1 = std::min(T, i0 + bs), rows = i1 - i0;
    for (int64_t j0 = 0; j0 < i1; j0 += bs) {
      const int64_t cols = std::min(i1, j0 + bs) - j0;
      BlockScores(m, hv, i0, rows, j0, cols, P.data());
      G(false, true, rows, cols, m.dv, dO + i0 * ldo, ldo, hv.v + j0 * hv.ldkv, hv.ldkv, dS.data(), cols, false);
      for (int64_t r = 0; r < rows; ++r) {
        float* p = P.data() + r * cols;
        float* ds = dS.data() + r * cols;
        const float l = lse[i0 + r], dl = delta[i0 + r];
        for (int64_t c = 0; c < cols; ++c) {
          p[c] = std::exp(p[c] - l);  // exp(-inf) = 0 above the diagonal
          ds[c] = p[c] * (ds[c] - dl) * m.softmax_scale;
        }
      }
      const float* qn = hv.qn + i0 * hv.ldq;
      G(false, false, rows, m.dn, cols, dS.data(), cols, hv.kn + j0 * hv.ldkv, hv.ldkv, g.dqn + i0 * hv.ldq, hv.ldq,
        true);
      G(false, false, rows, m.dr, cols, dS.data(), cols, hv.kp + j0 * hv.ldkp, hv.ldkp, g.dqn + m.dn + i0 * hv.ldq,
        hv.ldq, true);
      G(true, false, cols, m.dn, rows, dS.data(), cols, qn, hv.ldq, g.dkn + j0 * hv.ldkv, hv.ldkv, true);
      G(true, false, cols, m.dr, rows, dS.data(), cols, qn + m.dn, hv.ldq, g.dkp + j0 * g.ldkp, g.ldkp, true);
      G(true, false, cols, m.dv, rows, P.data(), cols, dO + i0 * ldo, ldo, g.dv + j0 * hv.ldkv, hv.ldkv, true);
    }
  }
}

void AttendBackward(const TrainContext& ctx, const MlaActs& a, MlaScratch& s) {
  const Dims& m = ctx.dims;
  const int64_t T = m.T, ldo = m.H * m.dv, ldkp = m.H * m.dr;
  ParallelFor(m.B * m.H, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / m.H, h = task % m.H, r0 = b * T;
      const HeadView hv(m, a, b, h);
      HeadGrads g;
      g.dqn = s.dq.data() + r0 * hv.ldq + h * m.dq;
      g.dkn = s.dkvb.data() + r0 * hv.ldkv + h * (m.dn + m.dv), g.dv = g.dkn + m.dn;
      g.dkp = s.dkpe_heads.data() + r0 * ldkp + h * m.dr, g.ldkp = ldkp;
      const int64_t off = r0 * ldo + h * m.dv;
      AttendHeadBackward(m, hv, a.o.data() + off, s.d_o.data() + off, ldo, a.lse.data() + task * T, g);
    }
  });
  ctx.lin->add_flops(CausalFlops(m, true) * m.B * m.H);
}

}  // namespace

void MlaActs::Reserve(const Dims& m) {
  if (m.rq > 0) Grow(q_a, m.n * m.rq), Grow(q_a_n, m.n * m.rq), Grow(q_a_rstd, m.n);
  Grow(q, m.n * m.H * m.dq), Grow(kv, m.n * m.lat), Grow(c, m.n * m.rc), Grow(c_rstd, m.n);
  Grow(kvb, m.n * m.H * (m.dn + m.dv)), Grow(lse, m.B * m.H * m.T), Grow(o, m.n * m.H * m.dv);
}

void MlaScratch::Reserve(const Dims& m, int /*threads*/) {
  Grow(dq, m.n * m.H * m.dq), Grow(dkv, m.n * m.lat), Grow(dc, m.n * m.rc);
  Grow(dkvb, m.n * m.H * (m.dn + m.dv)), Grow(d_o, m.n * m.H * m.dv);
  if (m.rq > 0) Grow(dq_a, m.n * m.rq), Grow(dq_an, m.n * m.rq);
  Grow(dkpe_heads, m.n * m.H * m.dr);
  Grow(norm_scratch, RmsNormScratch(m.n, std::max(m.rc, m.rq)));
}

void MlaForward(const TrainContext& ctx, const AttentionWeights& w, const float* x, MlaActs& a, float* out) {
  const Dims& m = ctx.dims;
  const Precision p = ctx.precision;
  LinearOps& lin = *ctx.lin;
  const int64_t n = m.n, ldq = m.H * m.dq, ldkv = m.H * (m.dn + m.dv), half = m.dr / 2;
  // q [n, H*dq]
  if (m.rq > 0) {
    lin.Forward(p, x, m.d, Data(w.q_a_proj), m.rq, m.d, a.q_a.data(), m.rq, n);
    RmsNormForward(a.q_a.data(), m.rq, w.q_a_layernorm.data(), m.eps, a.q_a_n.data(), m.rq, a.q_a_rstd.data(), n,
                   m.rq);
    lin.Forward(p, a.q_a_n.data(), m.rq, Data(w.q_b_proj), ldq, m.rq, a.q.data(), ldq, n);
  } else {
    lin.Forward(p, x, m.d, Data(w.q_proj), ldq, m.d, a.q.data(), ldq, n);
  }
  // kv [n, rc+dr] -> c = RMSNorm(first rc); rope on k_pe (last dr) and every q_pe.
  lin.Forward(p, x, m.d, Data(w.kv_a_proj_with_mqa), m.lat, m.d, a.kv.data(), m.lat, n);
  RmsNormForward(a.kv.data(), m.lat, w.kv_a_layernorm.data(), m.eps, a.c.data(), m.rc, a.c_rstd.data(), n, m.rc);
  ParallelFor(n, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* cs = ctx.rope_cos.data() + (t % m.T) * half;
      const float* sn = ctx.rope_sin.data() + (t % m.T) * half;
      RopeForward(a.kv.data() + t * m.lat + m.rc, cs, sn, m.dr);
      for (int64_t h = 0; h < m.H; ++h) RopeForward(a.q.data() + t * ldq + h * m.dq + m.dn, cs, sn, m.dr);
    }
  });
  // kvb [n, H*(dn+dv)] = per head [k_nope ; v]
  lin.Forward(p, a.c.data(), m.rc, Data(w.kv_b_proj), ldkv, m.rc, a.kvb.data(), ldkv, n);
  AttendForward(ctx, a);
  lin.Forward(p, a.o.data(), m.H * m.dv, Data(w.o_proj), m.d, m.H * m.dv, out, m.d, n);
}

void MlaBackward(const TrainContext& ctx, const AttentionWeights& w, AttentionWeights& g, const float* x,
                 const MlaActs& a, const float* dout, MlaScratch& s, float* dx, bool accumulate) {
  const Dims& m = ctx.dims;
  const Precision p = ctx.precision;
  LinearOps& lin = *ctx.lin;
  const int64_t n = m.n, ldq = m.H * m.dq, ldkv = m.H * (m.dn + m.dv), half = m.dr / 2;
  lin.Backward(p, dout, m.d, a.o.data(), m.H * m.dv, Data(w.o_proj), m.d, m.H * m.dv, s.d_o.data(), m.H * m.dv,
               false, Mut(g.o_proj), n);
  AttendBackward(ctx, a, s);
  // Undo the rotations: q_pe grads in place, k_pe grads summed over heads.
  ParallelFor(n, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* cs = ctx.rope_cos.data() + (t % m.T) * half;
      const float* sn = ctx.rope_sin.data() + (t % m.T) * half;
      for (int64_t h = 0; h < m.H; ++h) RopeBackward(s.dq.data() + t * ldq + h * m.dq + m.dn, cs, sn, m.dr);
      float* dkp = s.dkv.data() + t * m.lat + m.rc;
      const float* heads = s.dkpe_heads.data() + t * m.H * m.dr;
      std::copy_n(heads, m.dr, dkp);
      for (int64_t h = 1; h < m.H; ++h)
        for (int64_t i = 0; i < m.dr; ++i) dkp[i] += heads[h * m.dr + i];
      RopeBackward(dkp, cs, sn, m.dr);
    }
  });
  lin.Backward(p, s.dkvb.data(), ldkv, a.c.data(), m.rc, Data(w.kv_b_proj), ldkv, m.rc, s.dc.data(), m.rc, false,
               Mut(g.kv_b_proj), n);
  RmsNormBackward(s.dc.data(), m.rc, a.kv.data(), m.lat, w.kv_a_layernorm.data(), a.c_rstd.data(), s.dkv.data(),
                  m.lat, false, g.kv_a_layernorm.data(), s.norm_scratch.data(), n, m.rc);
  lin.Backward(p, s.dkv.data(), m.lat, x, m.d, Data(w.kv_a_proj_with_mqa), m.lat, m.d, dx, m.d, accumulate,
               Mut(g.kv_a_proj_with_mqa), n);
  if (m.rq > 0) {
    lin.Backward(p, s.dq.data(), ldq, a.q_a_n.data(), m.rq, Data(w.q_b_proj), ldq, m.rq, s.dq_an.data(), m.rq,
                 false, Mut(g.q_b_proj), n);
    RmsNormBackward(s.dq_an.data(), m.rq, a.q_a.data(), m.rq, w.q_a_layernorm.data(), a.q_a_rstd.data(),
                    s.dq_a.data(), m.rq, false, g.q_a_layernorm.data(), s.norm_scratch.data(), n, m.rq);
    lin.Backward(p, s.dq_a.data(), m.rq, x, m.d, Data(w.q_a_proj), m.rq, m.d, dx, m.d, true, Mut(g.q_a_proj), n);
  } else {
    lin.Backward(p, s.dq.data(), ldq, x, m.d, Data(w.q_proj), ldq, m.d, dx, m.d, true, Mut(g.q_proj), n);
  }
}

}  // namespace dsv3::train
