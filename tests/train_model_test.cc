// The trainer's whole network: (1) finite-difference gradient checks of
// every parameter tensor of tiny models (dense + MoE layers + MTP, with and
// without q LoRA, sigmoid/bias/group routing and softmax routing, MTP depth
// 1 and 2, tied embeddings), and (2) the training forward against the
// official reference (tests/golden) and against the engine's own
// Model::Forward / ForwardMtp on the same checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/parallel.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/train_model.h"
#include "train_test_util.h"

namespace dsv3::train {
namespace {

using testing::RandomTokens;
using testing::TinyConfig;
using testing::TinyOptions;

// Per tensor: probe the 4 largest-|grad| elements and 4 spread ones; each
// |fd - analytic| must be <= 1% of the tensor's max |analytic| plus the
// float32 noise floor of a central difference, |L| * 1e-6 / (2 eps) (the
// loss itself is only good to ~1e-7 relative). Probes whose perturbation
// changes any routing decision are skipped. Single-threaded: thousands of
// tiny forwards would otherwise be dominated by thread hand-offs.
void CheckModel(const TinyOptions& o, Balance mode, const std::string& tag) {
  SetNumThreads(1);
  const Config config = TinyConfig(o);
  TrainParams params(config);
  params.InitNormal(11, 0.2f);
  for (ParamTensor& p : params.tensors())
    if (p.role == TensorRole::kNorm)
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] += 0.2f * std::sin(1.3f * i + p.numel);
  ModelOptions mo;
  mo.batch = 2, mo.seq = 6;
  mo.balance.mode = mode, mo.balance.seq_alpha = 0.02, mo.balance.aux_alpha = 0.02;
  mo.mtp_lambda = 0.5;
  TrainModel model(params, mo);
  const auto tokens = RandomTokens(mo.batch * model.window(), o.vocab, 5);
  params.ZeroGrads();
  const Losses base = model.Step(tokens.data(), true, 1.0f);
  ASSERT_EQ(static_cast<int>(base.mtp.size()), o.mtp);
  if (mode != Balance::kNone && config.HasMoe()) {
    EXPECT_GT(base.balance, 0.0);
  }
  const uint64_t routing = model.RoutingHash();
  auto loss = [&] { return model.Step(tokens.data(), false, 1.0f).total; };
  int skipped = 0, probes = 0;
  for (ParamTensor& p : params.tensors()) {
    if (!p.grad) continue;
    std::vector<int64_t> order(p.numel);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + std::min<int64_t>(4, p.numel), order.end(),
                      [&](int64_t a, int64_t b) { return std::fabs(p.grad[a]) > std::fabs(p.grad[b]); });
    std::vector<int64_t> probe(order.begin(), order.begin() + std::min<int64_t>(4, p.numel));
    for (int64_t i = 0; i < 4; ++i) probe.push_back(i * p.numel / 4);
    const double scale = std::max(1e-12, std::fabs(static_cast<double>(p.grad[order[0]])));
    double worst = 0;
    for (int64_t i : probe) {
      const float x0 = p.value[i], eps = 1e-2f * std::max(0.1f, std::fabs(x0));
      p.value[i] = x0 + eps;
      const float xp = p.value[i];
      const double lp = loss();
      const bool same_p = model.RoutingHash() == routing;
      p.value[i] = x0 - eps;
      const float xm = p.value[i];
      const double lm = loss();
      const bool same_m = model.RoutingHash() == routing;
      p.value[i] = x0;
      ++probes;
      if (!same_p || !same_m) {
        ++skipped;
        continue;
      }
      const double h = static_cast<double>(xp) - xm;
      const double allowed = 1e-2 * scale + std::fabs(base.total) * 1e-6 / h;
      worst = std::max(worst, std::fabs((lp - lm) / h - p.grad[i]) / allowed);
    }
    EXPECT_LE(worst, 1.0) << tag << " " << p.name << " (max |grad| " << scale << ")";
    if (getenv("GRAD_VERBOSE")) printf("%s %-55s err/allowed %.2f (max|g| %.2e)\n", tag.c_str(), p.name.c_str(), worst, scale);
  }
  EXPECT_LE(skipped, probes / 10) << tag << ": too many probes changed the routing";
}

TEST(TrainModelGradTest, QLoraSigmoidMtp1AuxFree) { CheckModel(TinyOptions{}, Balance::kAuxFree, "qlora-sigmoid-mtp1"); }

TEST(TrainModelGradTest, NoQLoraSoftmaxMtp2AuxLoss) {
  TinyOptions o;
  o.q_lora = false, o.sigmoid = false, o.mtp = 2, o.yarn = false;
  CheckModel(o, Balance::kAuxLoss, "qproj-softmax-mtp2");
}

TEST(TrainModelGradTest, TiedEmbeddingsThreeLayersNoBalance) {
  TinyOptions o;
  o.tie = true, o.layers = 3, o.mtp = 1;
  CheckModel(o, Balance::kNone, "tied-3layers");
}

// Gradient accumulation: one step over 2B sequences equals two half steps
// with loss_scale 1/2 (main, MTP and the per-sequence balance loss all
// average over sequences), up to float32 summation order.
TEST(TrainModelGradTest, AccumulatedHalvesEqualTheWholeBatch) {
  SetNumThreads(1);
  const Config config = TinyConfig(TinyOptions{});
  TrainParams params(config);
  params.InitNormal(3, 0.2f);
  ModelOptions whole_o, half_o;
  whole_o.batch = 4, half_o.batch = 2;
  whole_o.seq = half_o.seq = 6;
  whole_o.balance.seq_alpha = half_o.balance.seq_alpha = 0.05;
  TrainModel whole(params, whole_o), half(params, half_o);
  const auto tokens = RandomTokens(4 * whole.window(), 64, 9);
  params.ZeroGrads();
  const Losses lw = whole.Step(tokens.data(), true, 1.0f);
  std::vector<std::vector<float>> g_whole;
  for (const ParamTensor& p : params.tensors())
    if (p.grad) g_whole.emplace_back(p.grad, p.grad + p.numel);
  params.ZeroGrads();
  const Losses l1 = half.Step(tokens.data(), true, 0.5f);
  const Losses l2 = half.Step(tokens.data() + 2 * half.window(), true, 0.5f);
  EXPECT_NEAR(lw.total, 0.5 * (l1.total + l2.total), 1e-6);
  size_t i = 0;
  for (const ParamTensor& p : params.tensors()) {
    if (!p.grad) continue;
    double mx = 1e-12, diff = 0;
    for (int64_t j = 0; j < p.numel; ++j)
      mx = std::max(mx, std::fabs(double(g_whole[i][j]))), diff = std::max(diff, std::fabs(double(g_whole[i][j]) - p.grad[j]));
    EXPECT_LE(diff / mx, 1e-4) << p.name;
    ++i;
  }
}

// ---------------------------------------------------------------------------
// Training forward == reference / engine forward.

struct Case {
  std::string dir;
  std::unique_ptr<SafetensorsFile> golden;
  int64_t B = 0, T = 0, V = 0;
  const int32_t* tokens = nullptr;
};

Case OpenCase(const std::string& name) {
  Case c;
  c.dir = std::string(DSV3_GOLDEN_DIR) + "/" + name;
  auto f = SafetensorsFile::Open(c.dir + "/golden.safetensors");
  EXPECT_TRUE(f.ok()) << f.status().message();
  c.golden = std::move(f).value();
  const TensorInfo* t = c.golden->Find("tokens");
  c.B = t->shape[0], c.T = t->shape[1];
  c.tokens = reinterpret_cast<const int32_t*>(t->data);
  c.V = c.golden->Find("logits")->shape[2];
  return c;
}

// max |a - b| / max(1, max |b|) over one row.
double RowError(const float* a, const float* b, int64_t V) {
  double diff = 0, mx = 1;
  for (int64_t v = 0; v < V; ++v) diff = std::max(diff, std::fabs(double(a[v]) - b[v])), mx = std::max(mx, std::fabs(double(b[v])));
  return diff / mx;
}

void CheckForwardMatches(const std::string& name) {
  Case c = OpenCase(name);
  auto model = Model::Load(c.dir);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const Model& m = **model;
  TrainParams params(m.config());
  ASSERT_TRUE(params.LoadCheckpoint(c.dir).ok());
  const int D = static_cast<int>(m.config().num_nextn_predict_layers);
  const int64_t T = c.T - D - 1;  // the trainer reads T + D + 1 tokens per sequence
  ModelOptions mo;
  mo.batch = c.B, mo.seq = T;
  TrainModel tm(params, mo);
  std::vector<std::vector<float>> logits;
  tm.Step(c.tokens, false, 1.0f, &logits);
  // The engine on the same checkpoint: one prefill of T positions, then MTP.
  KvCache cache = m.NewCache(c.B, c.T);
  Workspace ws;
  Batch batch;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t p = 0; p < T; ++p) batch.Add(c.tokens[b * c.T + p], p, b, true);
  ASSERT_TRUE(m.Forward(batch, cache, ws).ok());
  const std::vector<float> hidden(ws.hidden.begin(), ws.hidden.begin() + c.B * T * m.config().hidden_size);
  const auto* golden = reinterpret_cast<const float*>(c.golden->Find("logits")->data);
  double vs_engine = 0, vs_golden = 0;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t p = 0; p < T; ++p) {
      const float* ours = logits[0].data() + (b * T + p) * c.V;
      vs_engine = std::max(vs_engine, RowError(ours, ws.logits.data() + (b * T + p) * c.V, c.V));
      vs_golden = std::max(vs_golden, RowError(ours, golden + (b * c.T + p) * c.V, c.V));
    }
  EXPECT_LE(vs_engine, 1e-4) << name << " main logits vs Model::Forward";
  EXPECT_LE(vs_golden, 1e-3) << name << " main logits vs the reference";
  if (D > 0) {
    Batch mb;
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t p = 0; p < T; ++p) mb.Add(c.tokens[b * c.T + p + 1], p, b, true);
    ASSERT_TRUE(m.ForwardMtp(0, mb, hidden.data(), cache, ws).ok());
    const auto* golden_mtp = reinterpret_cast<const float*>(c.golden->Find("mtp_logits")->data);
    double mtp_engine = 0, mtp_golden = 0;
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t p = 0; p < T; ++p) {
        const float* ours = logits[1].data() + (b * T + p) * c.V;
        mtp_engine = std::max(mtp_engine, RowError(ours, ws.logits.data() + (b * T + p) * c.V, c.V));
        mtp_golden = std::max(mtp_golden, RowError(ours, golden_mtp + (b * (c.T - 1) + p) * c.V, c.V));
      }
    EXPECT_LE(mtp_engine, 1e-4) << name << " MTP logits vs Model::ForwardMtp";
    EXPECT_LE(mtp_golden, 1e-3) << name << " MTP logits vs the reference";
    std::printf("%s: MTP rel err vs engine %.2e, vs reference %.2e\n", name.c_str(), mtp_engine, mtp_golden);
  }
  std::printf("%s: main rel err vs engine %.2e, vs reference %.2e\n", name.c_str(), vs_engine, vs_golden);
}

TEST(TrainForwardTest, MatchesEngineAndReferenceV3Bf16) { CheckForwardMatches("v3_tiny_bf16"); }
TEST(TrainForwardTest, MatchesEngineAndReferenceV3Fp8) { CheckForwardMatches("v3_tiny_fp8"); }
TEST(TrainForwardTest, MatchesEngineAndReferenceV2Lite) { CheckForwardMatches("v2lite_tiny_bf16"); }

}  // namespace
}  // namespace dsv3::train
