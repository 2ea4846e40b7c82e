// Dense MLP and DeepSeekMoE forward/backward for training; see ffn.h.
#include "train/ffn.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "train/expert_parallel.h"
#include "train/layers.h"
#include "train/params.h"

namespace dsv3::train {

namespace {

template <typename V>
void Grow(V& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

// The gathered rows of token t's K assignments, in ascending row (= expert)
// order, which is the order inference adds expert outputs in.
void SortedSlots(const MoeActs& a, int64_t t, int64_t K, int32_t* rows, int32_t* ks) {
  for (int64_t k = 0; k < K; ++k) rows[k] = a.slot[t * K + k], ks[k] = static_cast<int32_t>(k);
  for (int64_t i = 1; i < K; ++i)
    for (int64_t j = i; j > 0 && rows[j] < rows[j - 1]; --j) std::swap(rows[j], rows[j - 1]), std::swap(ks[j], ks[j - 1]);
}

constexpr int64_t kMaxK = 64;

// Routes every token and groups the (token, k) assignments by expert.
void RouteAndGroup(const TrainContext& ctx, const RouterParams& rp, const MoeWeights& w, const float* x,
                   MoeActs& a) {
  const Dims& m = ctx.dims;
  const int64_t n = m.n, E = m.E, K = m.K;
  ctx.lin->Forward(Precision::kFp32, x, m.d, Data(w.gate), E, m.d, a.logits.data(), E, n);  // router in fp32
  const float* bias = w.e_score_correction_bias.empty() ? nullptr : w.e_score_correction_bias.data();
  ParallelFor(n, 16, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> scratch;
    if (static_cast<int64_t>(scratch.size()) < rp.scratch_size()) scratch.resize(rp.scratch_size());
    for (int64_t t = t0; t < t1; ++t)
      RouteToken(rp, a.logits.data() + t * E, bias, scratch.data(), a.ids.data() + t * K, a.weights.data() + t * K,
                 a.scores.data() + t * E);
  });
  std::fill(a.load.begin(), a.load.end(), 0);
  for (int64_t i = 0; i < n * K; ++i) ++a.load[a.ids[i]];
  a.offset[0] = 0;
  for (int64_t e = 0; e < E; ++e) a.offset[e + 1] = a.offset[e] + static_cast<int32_t>(a.load[e]);
  std::copy_n(a.offset.begin(), E, a.cursor.begin());  // next free row of each expert
  for (int64_t i = 0; i < n * K; ++i) {
    const int32_t row = a.cursor[a.ids[i]]++;
    a.slot[i] = row;
    a.token[row] = static_cast<int32_t>(i / K);
  }
}

// balance = alpha * mean over token groups of sum_e f_e P_e, with
// f_e = E/(K*G) * count_e and P_e = mean_t s_te / sum_j s_tj (DESIGN.md §4).
double BalanceForward(const Dims& m, const BalanceOptions& bal, MoeActs& a) {
  const double alpha = bal.alpha();
  if (alpha == 0.0) return 0.0;
  const int64_t G = bal.per_sequence() ? m.T : m.n, groups = m.n / G, E = m.E, K = m.K;
  double total = 0.0;
  for (int64_t gi = 0; gi < groups; ++gi) {
    float* f = a.frac.data() + gi * E;
    std::fill(f, f + E, 0.0f);
    std::vector<double>& P = a.mean_score;
    std::fill(P.begin(), P.end(), 0.0);
    for (int64_t t = gi * G; t < (gi + 1) * G; ++t) {
      for (int64_t k = 0; k < K; ++k) f[a.ids[t * K + k]] += 1.0f;
      const float* s = a.scores.data() + t * E;
      double sum = 0.0;
      for (int64_t e = 0; e < E; ++e) sum += s[e];
      for (int64_t e = 0; e < E; ++e) P[e] += s[e] / sum;
    }
    double lg = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      f[e] *= static_cast<float>(E) / static_cast<float>(K * G);
      lg += f[e] * P[e] / G;
    }
    total += lg;
  }
  return alpha * total / groups;
}

}  // namespace

void MlpActs::Reserve(int64_t rows, int64_t width) {
  Grow(gate, rows * width), Grow(up, rows * width), Grow(act, rows * width);
}

void FfnScratch::Reserve(const Dims& m) {
  const int64_t rows = std::max(m.n, m.n * m.K), width = std::max({m.F, m.Fe, m.Fs});
  Grow(dact, rows * width), Grow(dgate, rows * width), Grow(dup, rows * width);
  if (m.E > 0) {
    Grow(dxg, m.n * m.K * m.d), Grow(dyg, m.n * m.K * m.d), Grow(dweights, m.n * m.K);
    Grow(dlogits, m.n * m.E), Grow(shared_y, m.n * m.d);
  }
}

void MoeActs::Reserve(const Dims& m) {
  const int64_t n = m.n, E = m.E, K = m.K;
  Grow(logits, n * E), Grow(scores, n * E), Grow(ids, n * K), Grow(weights, n * K);
  Grow(offset, E + 1), Grow(slot, n * K), Grow(token, n * K), Grow(xg, n * K * m.d), Grow(yg, n * K * m.d);
  experts.Reserve(n * K, m.Fe);
  if (m.Fs > 0) shared.Reserve(n, m.Fs);
  Grow(frac, n / m.T * E), Grow(load, E), Grow(cursor, E), Grow(mean_score, E);
}

const char* BalanceName(Balance b) {
  switch (b) {
    case Balance::kAuxFree: return "aux-free";
    case Balance::kAuxLoss: return "aux-loss";
    case Balance::kNone: return "none";
  }
  return "?";
}

bool ParseBalance(const std::string& s, Balance* out) {
  if (s == "aux-free") *out = Balance::kAuxFree;
  else if (s == "aux-loss") *out = Balance::kAuxLoss;
  else if (s == "none") *out = Balance::kNone;
  else return false;
  return true;
}

void MlpForward(const TrainContext& ctx, const MlpWeights& w, int64_t width, const float* x, int64_t rows,
                const MlpRows& a, float* out) {
  const int64_t d = ctx.dims.d;
  LinearOps& lin = *ctx.lin;
  lin.Forward(ctx.precision, x, d, Data(w.gate_proj), width, d, a.gate, width, rows);  // [rows, width]
  lin.Forward(ctx.precision, x, d, Data(w.up_proj), width, d, a.up, width, rows);      // [rows, width]
  SiluMulForward(a.gate, a.up, a.act, rows, width);
  lin.Forward(ctx.precision, a.act, width, Data(w.down_proj), d, width, out, d, rows);  // [rows, d]
}

void MlpBackward(const TrainContext& ctx, const MlpWeights& w, MlpWeights& g, int64_t width, const float* x,
                 int64_t rows, const MlpRows& a, const float* dout, FfnScratch& s, float* dx, bool accumulate) {
  const int64_t d = ctx.dims.d;
  const Precision p = ctx.precision;
  LinearOps& lin = *ctx.lin;
  lin.Backward(p, dout, d, a.act, width, Data(w.down_proj), d, width, s.dact.data(), width, false,
               Mut(g.down_proj), rows);
  SiluMulBackward(s.dact.data(), a.gate, a.up, s.dgate.data(), s.dup.data(), rows, width);
  lin.Backward(p, s.dgate.data(), width, x, d, Data(w.gate_proj), width, d, dx, d, accumulate, Mut(g.gate_proj),
               rows);
  lin.Backward(p, s.dup.data(), width, x, d, Data(w.up_proj), width, d, dx, d, true, Mut(g.up_proj), rows);
}

void MoeForward(const TrainContext& ctx, const RouterParams& rp, const BalanceOptions& bal, const MoeWeights& w,
                const float* x, MoeActs& a, FfnScratch& s, float* out) {
  const Dims& m = ctx.dims;
  const int64_t n = m.n, d = m.d, K = m.K;
  RouteAndGroup(ctx, rp, w, x, a);
  ParallelFor(n * K, 64, [&](int64_t r0, int64_t r1) {  // xg [n*K, d]
    for (int64_t r = r0; r < r1; ++r) std::memcpy(a.xg.data() + r * d, x + a.token[r] * d, d * sizeof(float));
  });
  auto shared = [&] {
    if (w.has_shared()) MlpForward(ctx, w.shared_experts, m.Fs, x, n, a.shared.At(0, m.Fs), s.shared_y.data());
  };
  if (ctx.ep) {  // the experts' owners compute them; the shared experts run meanwhile
    ctx.ep->Forward(ctx, w, a, shared);
  } else {
    for (int64_t e = 0; e < m.E; ++e) {
      const int64_t r0 = a.offset[e], rows = a.offset[e + 1] - r0;
      if (rows > 0)
        MlpForward(ctx, w.experts[e], m.Fe, a.xg.data() + r0 * d, rows, a.experts.At(r0, m.Fe), a.yg.data() + r0 * d);
    }
    shared();
  }
  ParallelFor(n, 16, [&](int64_t t0, int64_t t1) {
    int32_t rows[kMaxK], ks[kMaxK];
    for (int64_t t = t0; t < t1; ++t) {
      float* o = out + t * d;
      std::fill(o, o + d, 0.0f);
      SortedSlots(a, t, K, rows, ks);
      for (int64_t k = 0; k < K; ++k) {
        const float wt = a.weights[t * K + ks[k]];
        const float* y = a.yg.data() + rows[k] * d;
        for (int64_t i = 0; i < d; ++i) o[i] += wt * y[i];
      }
      if (w.has_shared())
        for (int64_t i = 0; i < d; ++i) o[i] += s.shared_y[t * d + i];
    }
  });
  a.balance_loss = BalanceForward(m, bal, a);
}

namespace {

// dlogits [n, E] from the combine-weight grads and the balance loss.
void RouterBackward(const Dims& m, const RouterParams& rp, const BalanceOptions& bal, const MoeActs& a,
                    float balance_scale, FfnScratch& s) {
  const int64_t E = m.E, K = m.K, G = bal.per_sequence() ? m.T : m.n;
  const double bal_coef = bal.alpha() * balance_scale / (m.n / G) / G;
  ParallelFor(m.n, 16, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> ds;
    if (static_cast<int64_t>(ds.size()) < E) ds.resize(E);
    for (int64_t t = t0; t < t1; ++t) {
      const float* sc = a.scores.data() + t * E;
      const int32_t* ids = a.ids.data() + t * K;
      const float* dw = s.dweights.data() + t * K;
      std::fill(ds.begin(), ds.begin() + E, 0.0f);
      // w_k = c * s_k / (sum_sel s + 1e-20): ds_j = c/S (dw_j - sum_k dw_k s_k / S).
      const float c = rp.routed_scaling_factor;
      if (rp.norm_topk_prob) {
        float S = 0.0f, dot = 0.0f;
        for (int64_t k = 0; k < K; ++k) S += sc[ids[k]];
        S += 1e-20f;
        for (int64_t k = 0; k < K; ++k) dot += dw[k] * sc[ids[k]];
        for (int64_t k = 0; k < K; ++k) ds[ids[k]] += c / S * (dw[k] - dot / S);
      } else {
        for (int64_t k = 0; k < K; ++k) ds[ids[k]] += c * dw[k];
      }
      if (bal_coef != 0.0) {  // d/ds of P_e's normalised scores s_e / sum_j s_j
        const float* f = a.frac.data() + (t / G) * E;
        double sum = 0.0, fs = 0.0;
        for (int64_t e = 0; e < E; ++e) sum += sc[e], fs += f[e] * sc[e];
        for (int64_t e = 0; e < E; ++e) ds[e] += static_cast<float>(bal_coef * (f[e] / sum - fs / (sum * sum)));
      }
      float* dz = s.dlogits.data() + t * E;
      if (rp.scoring == ScoringFunc::kSigmoid) {
        for (int64_t e = 0; e < E; ++e) dz[e] = ds[e] * sc[e] * (1.0f - sc[e]);
      } else {
        float dot = 0.0f;
        for (int64_t e = 0; e < E; ++e) dot += ds[e] * sc[e];
        for (int64_t e = 0; e < E; ++e) dz[e] = sc[e] * (ds[e] - dot);
      }
    }
  });
}

}  // namespace

void MoeBackward(const TrainContext& ctx, const RouterParams& rp, const BalanceOptions& bal, const MoeWeights& w,
                 MoeWeights& g, const float* x, const MoeActs& a, const float* dout, float balance_scale,
                 FfnScratch& s, float* dx) {
  const Dims& m = ctx.dims;
  const int64_t n = m.n, d = m.d, K = m.K;
  auto shared = [&] {
    if (w.has_shared()) {
      MlpBackward(ctx, w.shared_experts, g.shared_experts, m.Fs, x, n, a.shared.At(0, m.Fs), dout, s, dx, false);
    } else {
      std::fill(dx, dx + n * d, 0.0f);
    }
  };
  // dyg = w * dout[token]; dweights = dout[token] . yg
  ParallelFor(n, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t row = a.slot[t * K + k];
        const float wt = a.weights[t * K + k];
        const float* g_out = dout + t * d;
        const float* y = a.yg.data() + row * d;
        float* dy = s.dyg.data() + row * d;
        float dot = 0.0f;
        for (int64_t i = 0; i < d; ++i) dy[i] = wt * g_out[i], dot += g_out[i] * y[i];
        s.dweights[t * K + k] = dot;
      }
  });
  if (ctx.ep) {  // the owners run the experts' backward; the shared experts' runs meanwhile
    ctx.ep->Backward(ctx, w, g, a, s, shared);
  } else {
    shared();
    for (int64_t e = 0; e < m.E; ++e) {
      const int64_t r0 = a.offset[e], rows = a.offset[e + 1] - r0;
      if (rows > 0)
        MlpBackward(ctx, w.experts[e], g.experts[e], m.Fe, a.xg.data() + r0 * d, rows, a.experts.At(r0, m.Fe),
                    s.dyg.data() + r0 * d, s, s.dxg.data() + r0 * d, false);
    }
  }
  ParallelFor(n, 16, [&](int64_t t0, int64_t t1) {
    int32_t rows[kMaxK], ks[kMaxK];
    for (int64_t t = t0; t < t1; ++t) {
      SortedSlots(a, t, K, rows, ks);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < d; ++i) dx[t * d + i] += s.dxg[rows[k] * d + i];
    }
  });
  RouterBackward(m, rp, bal, a, balance_scale, s);
  ctx.lin->Backward(Precision::kFp32, s.dlogits.data(), m.E, x, d, Data(w.gate), m.E, d, dx, d, true, Mut(g.gate), n);
}

}  // namespace dsv3::train
