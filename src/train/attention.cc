// MLA forward/backward for training; see attention.h. Causal attention runs
// in row blocks of kBlock queries so the GEMMs skip the masked upper
// triangle (apart from the diagonal blocks).
#include "train/attention.h"

#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "train/gemm.h"
#include "train/layers.h"
#include "train/params.h"

namespace dsv3::train {

namespace {

constexpr int64_t kBlock = 64;

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

// GEMM flops of the causal score and value products of one (sequence, head).
double CausalFlops(const Dims& m) {
  double f = 0.0;
  for (int64_t i0 = 0; i0 < m.T; i0 += kBlock) {
    const int64_t i1 = std::min(m.T, i0 + kBlock);
    f += GemmFlops(i1 - i0, i1, m.dq) + GemmFlops(i1 - i0, m.dv, i1);
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

// probs [T, T] = causal softmax(scale * (q_nope k_nope^T + q_pe k_pe^T)); o = probs v.
void AttendForward(const TrainContext& ctx, MlaActs& a) {
  const Dims& m = ctx.dims;
  const int64_t T = m.T, ldo = m.H * m.dv;
  ParallelFor(m.B * m.H, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / m.H, h = task % m.H;
      const HeadView hv(m, a, b, h);
      float* P = a.probs.data() + task * T * T;
      for (int64_t i0 = 0; i0 < T; i0 += kBlock) {
        const int64_t i1 = std::min(T, i0 + kBlock), rows = i1 - i0;
        G(false, true, rows, i1, m.dn, hv.qn + i0 * hv.ldq, hv.ldq, hv.kn, hv.ldkv, P + i0 * T, T, false);
        G(false, true, rows, i1, m.dr, hv.qp + i0 * hv.ldq, hv.ldq, hv.kp, hv.ldkp, P + i0 * T, T, true);
      }
      for (int64_t i = 0; i < T; ++i) {  // the arithmetic of ops::Softmax on scale * score
        float* p = P + i * T;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, p[j] *= m.softmax_scale);
        float sum = 0.0f;
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= i; ++j) p[j] *= inv;
        std::fill(p + i + 1, p + T, 0.0f);
      }
      float* o = a.o.data() + b * T * ldo + h * m.dv;
      for (int64_t i0 = 0; i0 < T; i0 += kBlock) {
        const int64_t i1 = std::min(T, i0 + kBlock);
        G(false, false, i1 - i0, m.dv, i1, P + i0 * T, T, hv.v, hv.ldkv, o + i0 * ldo, ldo, false);
      }
    }
  });
  ctx.lin->add_flops(CausalFlops(m) * m.B * m.H);
}

// dP = dO v^T -> dS (in place); dq = dS k; dk = dS^T q; dv = P^T dO. Key
// and value grads of a row block reach rows [0, i1), so blocks run from the
// last (which covers every row and overwrites) to the first (accumulating).
void AttendBackward(const TrainContext& ctx, const MlaActs& a, MlaScratch& s) {
  const Dims& m = ctx.dims;
  const int64_t T = m.T, ldo = m.H * m.dv, ldkp = m.H * m.dr;
  ParallelFor(m.B * m.H, 1, [&](int64_t t0, int64_t t1) {
    float* dS = s.dprobs.data() + omp_get_thread_num() * T * T;
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / m.H, h = task % m.H, r0 = b * T;
      const HeadView hv(m, a, b, h);
      const float* P = a.probs.data() + task * T * T;
      const float* dO = s.d_o.data() + r0 * ldo + h * m.dv;
      float* dqn = s.dq.data() + r0 * hv.ldq + h * m.dq;
      float* dkn = s.dkvb.data() + r0 * hv.ldkv + h * (m.dn + m.dv);
      float* dv = dkn + m.dn;
      float* dkp = s.dkpe_heads.data() + r0 * ldkp + h * m.dr;
      for (int64_t i0 = 0; i0 < T; i0 += kBlock) {
        const int64_t i1 = std::min(T, i0 + kBlock);
        G(false, true, i1 - i0, i1, m.dv, dO + i0 * ldo, ldo, hv.v, hv.ldkv, dS + i0 * T, T, false);
      }
      for (int64_t i = 0; i < T; ++i) {
        const float* p = P + i * T;
        float* ds = dS + i * T;
        float dot = 0.0f;
        for (int64_t j = 0; j <= i; ++j) dot += p[j] * ds[j];
        for (int64_t j = 0; j <= i; ++j) ds[j] = p[j] * (ds[j] - dot) * m.softmax_scale;
        std::fill(ds + i + 1, ds + T, 0.0f);
      }
      for (int64_t i0 = (T - 1) / kBlock * kBlock; i0 >= 0; i0 -= kBlock) {
        const int64_t i1 = std::min(T, i0 + kBlock), rows = i1 - i0;
        const bool acc = i1 != T;
        const float* ds = dS + i0 * T;
        G(false, false, rows, m.dn, i1, ds, T, hv.kn, hv.ldkv, dqn + i0 * hv.ldq, hv.ldq, false);
        G(false, false, rows, m.dr, i1, ds, T, hv.kp, hv.ldkp, dqn + m.dn + i0 * hv.ldq, hv.ldq, false);
        G(true, false, i1, m.dn, rows, ds, T, hv.qn + i0 * hv.ldq, hv.ldq, dkn, hv.ldkv, acc);
        G(true, false, i1, m.dr, rows, ds, T, hv.qp + i0 * hv.ldq, hv.ldq, dkp, ldkp, acc);
        G(true, false, i1, m.dv, rows, P + i0 * T, T, dO + i0 * ldo, ldo, dv, hv.ldkv, acc);
      }
    }
  });
  ctx.lin->add_flops(2.0 * CausalFlops(m) * m.B * m.H);
}

}  // namespace

void MlaActs::Reserve(const Dims& m) {
  if (m.rq > 0) Grow(q_a, m.n * m.rq), Grow(q_a_n, m.n * m.rq), Grow(q_a_rstd, m.n);
  Grow(q, m.n * m.H * m.dq), Grow(kv, m.n * m.lat), Grow(c, m.n * m.rc), Grow(c_rstd, m.n);
  Grow(kvb, m.n * m.H * (m.dn + m.dv)), Grow(probs, m.B * m.H * m.T * m.T), Grow(o, m.n * m.H * m.dv);
}

void MlaScratch::Reserve(const Dims& m, int threads) {
  Grow(dq, m.n * m.H * m.dq), Grow(dkv, m.n * m.lat), Grow(dc, m.n * m.rc);
  Grow(dkvb, m.n * m.H * (m.dn + m.dv)), Grow(d_o, m.n * m.H * m.dv);
  if (m.rq > 0) Grow(dq_a, m.n * m.rq), Grow(dq_an, m.n * m.rq);
  Grow(dkpe_heads, m.n * m.H * m.dr), Grow(dprobs, threads * m.T * m.T);
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
