// Finite-difference gradient checks of every trainer op and of whole tiny
// models. Everything runs in float32 (the trainer's precision); the
// objectives are summed in double and central differences use the float
// perturbation actually applied. Tolerance: max |fd - analytic| <= 0.5% of
// the largest analytic gradient of the tensor (float32 central differences
// land at 1e-6..3e-4 of it here; a wrong factor, sign or missing term is off
// by tens of percent). Each per-op check also runs the reverse test: a
// visibly corrupted gradient must fail the same comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "train/attention.h"
#include "train/ffn.h"
#include "train/layers.h"
#include "train/linear.h"
#include "train/params.h"
#include "train/train_model.h"
#include "train_test_util.h"

namespace dsv3::train {
namespace {

using testing::RandomTokens;
using testing::RandomVector;
using testing::TinyConfig;
using testing::TinyOptions;

constexpr double kTol = 5e-3;

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Worst |fd - analytic| relative to max |analytic| over (up to max_probes
// evenly spread) elements of x. `valid` may veto a probe (routing changed).
double GradError(const std::function<double()>& f, float* x, int64_t n, const float* analytic, float eps,
                 int64_t max_probes = 64, const std::function<bool()>& valid = nullptr, int* skipped = nullptr) {
  double worst = 0, scale = 1e-12;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<double>(analytic[i])));
  const int64_t step = std::max<int64_t>(1, n / max_probes);
  for (int64_t i = 0; i < n; i += step) {
    const float x0 = x[i];
    x[i] = x0 + eps;
    const float xp = x[i];
    const double fp = f();
    const bool ok_p = !valid || valid();
    x[i] = x0 - eps;
    const float xm = x[i];
    const double fm = f();
    const bool ok_m = !valid || valid();
    x[i] = x0;
    if (!ok_p || !ok_m) {
      if (skipped) ++*skipped;
      continue;
    }
    const double fd = (fp - fm) / (static_cast<double>(xp) - xm);
    worst = std::max(worst, std::fabs(fd - analytic[i]));
  }
  return worst / scale;
}

// Checks the gradient and that a corrupted copy (one element doubled) fails.
void ExpectGrad(const std::function<double()>& f, float* x, int64_t n, const std::vector<float>& analytic,
                float eps, const std::string& what) {
  const double err = GradError(f, x, n, analytic.data(), eps, n);
  if (getenv("GRAD_VERBOSE")) printf("%-60s err %.2e\n", what.c_str(), err);
  EXPECT_LE(err, kTol) << what;
  std::vector<float> bad = analytic;
  int64_t big = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::fabs(bad[i]) > std::fabs(bad[big])) big = i;
  bad[big] *= 1.5f;
  EXPECT_GT(GradError(f, x, n, bad.data(), eps, n), kTol) << what << " (corrupted gradient not detected)";
}

TEST(TrainGradTest, RmsNorm) {
  const int64_t n = 5, d = 7;
  auto x = RandomVector(n * d, 1), w = RandomVector(d, 2), R = RandomVector(n * d, 3);
  for (float& v : w) v += 1.0f;
  std::vector<float> out(n * d), rstd(n), dx(n * d), dw(d, 0.0f), scratch(RmsNormScratch(n, d));
  auto f = [&] {
    RmsNormForward(x.data(), d, w.data(), 1e-6f, out.data(), d, rstd.data(), n, d);
    return Dot(out, R);
  };
  f();
  RmsNormBackward(R.data(), d, x.data(), d, w.data(), rstd.data(), dx.data(), d, false, dw.data(), scratch.data(), n, d);
  ExpectGrad(f, x.data(), n * d, dx, 1e-2f, "rmsnorm dx");
  ExpectGrad(f, w.data(), d, dw, 1e-2f, "rmsnorm dw");
}

TEST(TrainGradTest, RopeScaledRotation) {
  const int64_t dim = 8;
  auto x = RandomVector(dim, 4), R = RandomVector(dim, 5);
  std::vector<float> cs(dim / 2), sn(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) cs[i] = 1.3f * std::cos(0.7f * i + 0.2f), sn[i] = 1.3f * std::sin(0.7f * i + 0.2f);
  auto f = [&] {
    std::vector<float> y = x;
    RopeForward(y.data(), cs.data(), sn.data(), dim);
    return Dot(y, R);
  };
  std::vector<float> dx = R;
  RopeBackward(dx.data(), cs.data(), sn.data(), dim);
  ExpectGrad(f, x.data(), dim, dx, 1e-2f, "rope");
}

TEST(TrainGradTest, SiluMul) {
  const int64_t n = 3, f_ = 5;
  auto g = RandomVector(n * f_, 6, 2.0f), u = RandomVector(n * f_, 7), R = RandomVector(n * f_, 8);
  std::vector<float> act(n * f_), dg(n * f_), du(n * f_);
  auto f = [&] {
    SiluMulForward(g.data(), u.data(), act.data(), n, f_);
    return Dot(act, R);
  };
  SiluMulBackward(R.data(), g.data(), u.data(), dg.data(), du.data(), n, f_);
  ExpectGrad(f, g.data(), n * f_, dg, 1e-2f, "silu gate");
  ExpectGrad(f, u.data(), n * f_, du, 1e-2f, "silu up");
}

TEST(TrainGradTest, CrossEntropy) {
  const int64_t n = 4, V = 9;
  auto z = RandomVector(n * V, 9, 2.0f);
  std::vector<int32_t> tgt = {3, 0, 8, 5};
  std::vector<float> probs(n * V), losses(n);
  auto f = [&] {
    probs = z;
    return 0.7 * CrossEntropyForward(probs.data(), tgt.data(), losses.data(), n, V);
  };
  f();
  CrossEntropyBackward(probs.data(), tgt.data(), 0.7f, n, V);
  const std::vector<float> dz = probs;
  ExpectGrad(f, z.data(), n * V, dz, 1e-2f, "cross-entropy");
}

TEST(TrainGradTest, SoftCrossEntropy) {
  const int64_t n = 4, V = 9;
  auto z = RandomVector(n * V, 19, 2.0f);
  std::vector<float> targets = RandomVector(3 * V, 20, 1.0f);  // 3 target distributions
  for (int64_t r = 0; r < 3; ++r) {
    float* p = targets.data() + r * V;
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += (p[v] = std::exp(p[v]));
    for (int64_t v = 0; v < V; ++v) p[v] = static_cast<float>(p[v] / s);
  }
  const std::vector<int32_t> rows = {2, -1, 0, 2};  // row 1 unscored
  std::vector<float> probs(n * V), losses(n);
  auto f = [&] {
    probs = z;
    return 0.7 * SoftCrossEntropyForward(probs.data(), targets.data(), rows.data(), losses.data(), n, V);
  };
  f();
  EXPECT_EQ(losses[1], 0.0f);
  // loss_i = -sum p log q, directly.
  for (int64_t i : {0, 2, 3}) {
    double want = 0;
    for (int64_t v = 0; v < V; ++v) want -= targets[rows[i] * V + v] * std::log(probs[i * V + v]);
    EXPECT_NEAR(losses[i], want, 1e-5) << i;
  }
  SoftCrossEntropyBackward(probs.data(), targets.data(), rows.data(), 0.7f, n, V);
  const std::vector<float> dz = probs;
  ExpectGrad(f, z.data(), n * V, dz, 1e-2f, "soft cross-entropy");
}

TEST(TrainGradTest, EmbeddingAndLinear) {
  const int64_t n = 5, V = 6, in = 7, out = 3;
  auto table = RandomVector(V * in, 10), W = RandomVector(out * in, 11), R = RandomVector(n * out, 12);
  std::vector<int32_t> tok = {1, 4, 1, 0, 5};
  std::vector<float> x(n * in), y(n * out), dx(n * in), dW(out * in, 0.0f), dtable(V * in, 0.0f);
  LinearOps lin;
  auto f = [&] {
    EmbeddingForward(table.data(), tok.data(), n, in, x.data(), in);
    lin.Forward(Precision::kFp32, x.data(), in, W.data(), out, in, y.data(), out, n);
    return Dot(y, R);
  };
  f();
  lin.Backward(Precision::kFp32, R.data(), out, x.data(), in, W.data(), out, in, dx.data(), in, false, dW.data(), n);
  EmbeddingBackward(dx.data(), in, tok.data(), n, in, dtable.data());
  ExpectGrad(f, W.data(), out * in, dW, 1e-2f, "linear dW");
  ExpectGrad(f, table.data(), V * in, dtable, 1e-2f, "embedding (through linear dx)");
}

// A layer-level check harness: params with random weights (norms near 1).
struct LayerFixture {
  Config config;
  TrainParams params;
  LinearOps lin;
  TrainContext ctx;
  explicit LayerFixture(const TinyOptions& o, int64_t B = 2, int64_t T = 5)
      : config(TinyConfig(o)), params(config) {
    params.InitNormal(7, 0.3f);
    for (ParamTensor& p : params.tensors())
      if (p.role == TensorRole::kNorm)
        for (int64_t i = 0; i < p.numel; ++i) p.value[i] += 0.2f * std::sin(1.7f * i + 0.3f);
    ctx.Init(config, B, T, Precision::kFp32, &lin);
  }
  // The analytic gradient of `name` as a vector.
  std::vector<float> Grad(const std::string& name) const {
    const ParamTensor* p = params.Find(name);
    return std::vector<float>(p->grad, p->grad + p->numel);
  }
};

TEST(TrainGradTest, MlaWithAndWithoutQLora) {
  for (bool q_lora : {true, false}) {
    TinyOptions o;
    o.q_lora = q_lora;
    LayerFixture fx(o);
    const Dims& m = fx.ctx.dims;
    const AttentionWeights& w = fx.params.w().layers[0].attn;
    MlaActs acts;
    acts.Reserve(m);
    MlaScratch scratch;
    scratch.Reserve(m, 8);
    auto x = RandomVector(m.n * m.d, 13), R = RandomVector(m.n * m.d, 14);
    std::vector<float> out(m.n * m.d), dx(m.n * m.d);
    auto f = [&] {
      MlaForward(fx.ctx, w, x.data(), acts, out.data());
      return Dot(out, R);
    };
    f();
    fx.params.ZeroGrads();
    MlaBackward(fx.ctx, w, fx.params.g().layers[0].attn, x.data(), acts, R.data(), scratch, dx.data(), false);
    const std::string tag = q_lora ? "q_lora " : "q_proj ";
    ExpectGrad(f, x.data(), m.n * m.d, dx, 1e-2f, tag + "mla dx");
    for (const ParamTensor& p : fx.params.tensors()) {
      if (p.name.rfind("model.layers.0.self_attn.", 0) != 0) continue;
      ExpectGrad(f, p.value, p.numel, fx.Grad(p.name), 1e-2f, tag + p.name);
    }
  }
}

TEST(TrainGradTest, DenseMlp) {
  LayerFixture fx(TinyOptions{});
  const Dims& m = fx.ctx.dims;
  const MlpWeights& w = fx.params.w().layers[0].mlp;
  MlpActs acts;
  acts.Reserve(m.n, m.F);
  FfnScratch scratch;
  scratch.Reserve(m);
  auto x = RandomVector(m.n * m.d, 15), R = RandomVector(m.n * m.d, 16);
  std::vector<float> out(m.n * m.d), dx(m.n * m.d);
  auto f = [&] {
    MlpForward(fx.ctx, w, m.F, x.data(), m.n, acts.At(0, m.F), out.data());
    return Dot(out, R);
  };
  f();
  fx.params.ZeroGrads();
  MlpBackward(fx.ctx, w, fx.params.g().layers[0].mlp, m.F, x.data(), m.n, acts.At(0, m.F), R.data(), scratch,
              dx.data(), false);
  ExpectGrad(f, x.data(), m.n * m.d, dx, 1e-2f, "mlp dx");
  for (const char* t : {"gate_proj", "up_proj", "down_proj"}) {
    const std::string name = std::string("model.layers.0.mlp.") + t + ".weight";
    ExpectGrad(f, fx.params.Find(name)->value, fx.params.Find(name)->numel, fx.Grad(name), 1e-2f, name);
  }
}

// MoE: router (sigmoid + bias + groups, or softmax), experts, shared expert
// and the balance loss. Probes that change any routing decision are skipped
// (the loss is not differentiable there); few may be.
void CheckMoe(bool sigmoid, Balance mode) {
  TinyOptions o;
  o.sigmoid = sigmoid;
  LayerFixture fx(o, 2, 6);
  const Dims& m = fx.ctx.dims;
  const RouterParams rp = RouterParams::FromConfig(fx.config);
  BalanceOptions bal;
  bal.mode = mode, bal.seq_alpha = 0.05, bal.aux_alpha = 0.05;  // large enough to matter in the check
  const MoeWeights& w = fx.params.w().layers[1].moe;
  if (sigmoid) {  // a non-zero bias so it really shapes the selection
    ParamTensor* b = nullptr;
    for (ParamTensor& p : fx.params.tensors())
      if (p.role == TensorRole::kRouterBias && p.name.find("layers.1.") != std::string::npos) b = &p;
    for (int64_t e = 0; e < b->numel; ++e) b->value[e] = 0.05f * ((e * 7) % 5 - 2);
  }
  MoeActs acts;
  acts.Reserve(m);
  FfnScratch scratch;
  scratch.Reserve(m);
  auto x = RandomVector(m.n * m.d, 17);
  std::vector<float> out(m.n * m.d), dx(m.n * m.d);
  // Two objectives: outputs and balance loss together, then the balance
  // loss alone (its gradient is small next to the outputs').
  for (float r_scale : {1.0f, 0.0f}) {
    auto R = RandomVector(m.n * m.d, 18, r_scale);
    std::vector<int32_t> ids0;
    auto f = [&] {
      MoeForward(fx.ctx, rp, bal, w, x.data(), acts, scratch, out.data());
      return Dot(out, R) + acts.balance_loss;
    };
    f();
    EXPECT_GT(acts.balance_loss, 0.0) << BalanceName(mode);
    ids0.assign(acts.ids.begin(), acts.ids.begin() + m.n * m.K);
    auto same_routing = [&] { return std::equal(ids0.begin(), ids0.end(), acts.ids.begin()); };
    fx.params.ZeroGrads();
    MoeBackward(fx.ctx, rp, bal, w, fx.params.g().layers[1].moe, x.data(), acts, R.data(), 1.0f, scratch, dx.data());
    const std::string tag = std::string(sigmoid ? "sigmoid " : "softmax ") + BalanceName(mode) +
                            (r_scale == 0.0f ? " balance-only " : " ");
    int skipped = 0;
    double err = GradError(f, x.data(), m.n * m.d, dx.data(), 1e-3f, 200, same_routing, &skipped);
    EXPECT_LE(err, kTol) << tag << "dx";
    if (getenv("GRAD_VERBOSE")) printf("%-60s err %.2e\n", (tag + "dx").c_str(), err);
    for (const ParamTensor& p : fx.params.tensors()) {
      if (p.name.rfind("model.layers.1.mlp.", 0) != 0 || !p.grad) continue;
      if (r_scale == 0.0f && p.role != TensorRole::kRouter) continue;  // only the router sees the balance loss
      const auto g = fx.Grad(p.name);
      err = GradError(f, p.value, p.numel, g.data(), 1e-3f, 200, same_routing, &skipped);
      EXPECT_LE(err, kTol) << tag << p.name;
      if (getenv("GRAD_VERBOSE")) printf("%-60s err %.2e\n", (tag + p.name).c_str(), err);
    }
    EXPECT_LE(skipped, 20) << tag << "too many probes changed the routing";
    if (getenv("GRAD_VERBOSE")) printf("%s skipped %d\n", tag.c_str(), skipped);
  }
}

TEST(TrainGradTest, MoeSigmoidAuxFree) { CheckMoe(true, Balance::kAuxFree); }
TEST(TrainGradTest, MoeSigmoidAuxLoss) { CheckMoe(true, Balance::kAuxLoss); }
TEST(TrainGradTest, MoeSoftmaxAuxFree) { CheckMoe(false, Balance::kAuxFree); }

}  // namespace
}  // namespace dsv3::train
