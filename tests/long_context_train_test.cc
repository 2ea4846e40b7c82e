// Long-context training (issue 17): the trainer's blocked (flash-style) MLA
// attention and YaRN. (1) Finite-difference gradients of one MLA layer with
// attention blocks much smaller than the sequence (partial last block,
// several key blocks per query block), and the same outputs and gradients
// for any block size; (2) the training forward's logits equal the engine's
// Model::Forward on a YaRN checkpoint (mscale != mscale_all_dim, so both the
// cos/sin magnitude and the softmax mscale^2 matter) at positions 8x past
// original_max_position_embeddings, with one block and with many.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "core/parallel.h"
#include "model/model.h"
#include "train/attention.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/train_model.h"
#include "train_test_util.h"

namespace dsv3::train {
namespace {

using testing::RandomTokens;
using testing::RandomVector;

// A tiny MLA model whose YaRN stretches 32 original positions by 8, with
// mscale 1.0 over mscale_all_dim 0.7 and a rope dim of 8 (4 frequencies, so
// the interpolated, blended and extrapolated bands all occur).
std::string YarnConfigJson(int layers, bool yarn = true) {
  return "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 48, \"hidden_size\": 32, \"intermediate_size\": 48,"
         " \"moe_intermediate_size\": 16, \"num_hidden_layers\": " + std::to_string(layers) +
         ", \"num_nextn_predict_layers\": 0, \"num_attention_heads\": 2, \"n_shared_experts\": 1,"
         " \"n_routed_experts\": 4, \"num_experts_per_tok\": 2, \"routed_scaling_factor\": 2.5,"
         " \"kv_lora_rank\": 16, \"q_lora_rank\": 24, \"qk_rope_head_dim\": 8, \"v_head_dim\": 8,"
         " \"qk_nope_head_dim\": 8, \"first_k_dense_replace\": 1, \"max_position_embeddings\": 256,"
         " \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000, \"bos_token_id\": 0, \"eos_token_id\": 1,"
         " \"topk_method\": \"noaux_tc\", \"scoring_func\": \"sigmoid\", \"norm_topk_prob\": true,"
         " \"n_group\": 2, \"topk_group\": 1, \"tie_word_embeddings\": false" +
         std::string(yarn ? "," : "}") + (!yarn ? "" :
         " \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 8.0, \"original_max_position_embeddings\": 32,"
         " \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, \"mscale_all_dim\": 0.7}}");
}

Config YarnConfig(int layers) {
  auto c = ParseConfig(YarnConfigJson(layers), "yarn-tiny");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return *c;
}

// One MLA layer on B x T rows with attention blocks of `block`: out, and the
// gradients of L = sum(out * R) with respect to x and every attention weight.
struct MlaRun {
  std::vector<float> out, dx;
  std::vector<std::vector<float>> grads;  // per trainable tensor of layer 0's attention
};

class MlaHarness {
 public:
  MlaHarness(int64_t B, int64_t T) : config_(YarnConfig(1)), params_(config_), B_(B), T_(T) {
    params_.InitNormal(7, 0.3f);
    x_ = RandomVector(B * T * config_.hidden_size, 3);
    r_ = RandomVector(B * T * config_.hidden_size, 4);
  }
  TrainParams& params() { return params_; }
  std::vector<float>& x() { return x_; }
  std::vector<float*> AttnGrads() {
    auto& g = params_.g().layers[0].attn;
    return {Mut(g.q_a_proj), Mut(g.q_b_proj), Mut(g.kv_a_proj_with_mqa), Mut(g.kv_b_proj), Mut(g.o_proj)};
  }
  std::vector<float*> AttnValues() {
    auto& w = params_.w().layers[0].attn;
    return {Mut(w.q_a_proj), Mut(w.q_b_proj), Mut(w.kv_a_proj_with_mqa), Mut(w.kv_b_proj), Mut(w.o_proj)};
  }
  std::vector<int64_t> AttnSizes() const {
    const auto& w = params_.w().layers[0].attn;
    std::vector<int64_t> n;
    for (const Weight* t : {&w.q_a_proj, &w.q_b_proj, &w.kv_a_proj_with_mqa, &w.kv_b_proj, &w.o_proj})
      n.push_back(t->rows * t->cols);
    return n;
  }

  // sum(out * R) in double.
  double Loss(int64_t block, MlaRun* run = nullptr, bool backward = false) {
    LinearOps lin;
    TrainContext ctx;
    ctx.Init(config_, B_, T_, Precision::kFp32, &lin);
    ctx.dims.attn_block = block;
    MlaActs acts;
    acts.Reserve(ctx.dims);
    std::vector<float> out(ctx.dims.n * ctx.dims.d);
    MlaForward(ctx, params_.w().layers[0].attn, x_.data(), acts, out.data());
    double loss = 0;
    for (size_t i = 0; i < out.size(); ++i) loss += double(out[i]) * r_[i];
    if (!backward) return loss;
    params_.ZeroGrads();
    MlaScratch scratch;
    scratch.Reserve(ctx.dims, NumThreads());
    run->dx.assign(x_.size(), 0.0f);
    MlaBackward(ctx, params_.w().layers[0].attn, params_.g().layers[0].attn, x_.data(), acts, r_.data(), scratch,
                run->dx.data(), false);
    run->out = out;
    run->grads.clear();
    const auto sizes = AttnSizes();
    const auto gs = AttnGrads();
    for (size_t t = 0; t < gs.size(); ++t) run->grads.emplace_back(gs[t], gs[t] + sizes[t]);
    return loss;
  }

 private:
  Config config_;
  TrainParams params_;
  int64_t B_, T_;
  std::vector<float> x_, r_;
};

double MaxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// Central differences on the largest-gradient elements and a spread of
// others, of x and of every attention matrix; |fd - analytic| <= 1% of the
// tensor's max |analytic| plus the float32 noise of the difference.
TEST(LongContextTrainTest, BlockedAttentionGradientsMatchFiniteDifferences) {
  SetNumThreads(1);
  MlaHarness h(2, 11);
  const int64_t block = 3;  // 4 query blocks, the last one partial
  MlaRun run;
  const double base = h.Loss(block, &run, true);
  const double eps = 1e-2;
  auto check = [&](float* values, const std::vector<float>& grad, const std::string& name) {
    const double gmax = MaxAbs(grad), tol = 0.01 * gmax + std::fabs(base) * 1e-6 / (2 * eps) * 4;
    std::vector<int64_t> probes;
    for (int64_t i = 0; i < static_cast<int64_t>(grad.size()); i += std::max<int64_t>(1, grad.size() / 6))
      probes.push_back(i);
    probes.push_back(std::max_element(grad.begin(), grad.end(),
                                      [](float a, float b) { return std::fabs(a) < std::fabs(b); }) - grad.begin());
    for (int64_t i : probes) {
      const float keep = values[i];
      values[i] = keep + eps;
      const double up = h.Loss(block);
      values[i] = keep - eps;
      const double down = h.Loss(block);
      values[i] = keep;
      const double fd = (up - down) / (2 * eps);
      EXPECT_NEAR(fd, grad[i], tol) << name << "[" << i << "]";
    }
  };
  check(h.x().data(), run.dx, "x");
  const auto values = h.AttnValues();
  const char* names[] = {"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"};
  for (size_t t = 0; t < values.size(); ++t) check(values[t], run.grads[t], names[t]);
}

// The block size changes the order of float32 sums only.
TEST(LongContextTrainTest, AnyBlockSizeGivesTheSameOutputsAndGradients) {
  SetNumThreads(2);
  MlaHarness h(2, 150);
  MlaRun whole, small, odd;
  h.Loss(256, &whole, true);
  h.Loss(16, &small, true);
  h.Loss(7, &odd, true);
  for (const MlaRun* r : {&small, &odd}) {
    auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
      double d = 0;
      for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
      return d / std::max(1e-30, MaxAbs(b));
    };
    EXPECT_LE(rel(r->out, whole.out), 1e-5);
    EXPECT_LE(rel(r->dx, whole.dx), 1e-4);
    for (size_t t = 0; t < whole.grads.size(); ++t) EXPECT_LE(rel(r->grads[t], whole.grads[t]), 1e-4) << t;
  }
}

// max |a - b| / max(1, max |b|) over one row.
double RowError(const float* a, const float* b, int64_t V) {
  double diff = 0, mx = 1;
  for (int64_t v = 0; v < V; ++v)
    diff = std::max(diff, std::fabs(double(a[v]) - b[v])), mx = std::max(mx, std::fabs(double(b[v])));
  return diff / mx;
}

// A random YaRN checkpoint (written by the trainer's own SaveCheckpoint),
// run by the trainer and by the engine at positions 0..T-1, T = 8 x the
// original context; also with YaRN removed from the engine's config, which
// must then disagree (so the comparison sees the scaling at all).
TEST(LongContextTrainTest, TrainForwardEqualsEngineOnYarnConfigPastOriginalContext) {
  SetNumThreads(2);
  const std::string dir = std::filesystem::temp_directory_path() / ("dsv3_yarn_ckpt_" + std::to_string(getpid()));
  const Config config = YarnConfig(2);
  TrainParams params(config);
  params.InitNormal(5, 0.25f);
  AdamW opt(params, OptimizerOptions{});
  ASSERT_TRUE(SaveCheckpoint(dir, YarnConfigJson(2), params, opt, 0, SaveOptions{}).ok());
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const Model& m = **model;
  const int64_t B = 2, T = 256, V = config.vocab_size;
  const auto tokens = RandomTokens(B * (T + 1), V, 9);
  KvCache cache = m.NewCache(B, T);
  Workspace ws;
  Batch batch;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < T; ++p) batch.Add(tokens[b * (T + 1) + p], p, b, true);
  ASSERT_TRUE(m.Forward(batch, cache, ws).ok());
  for (int64_t block : {64, 256, 24}) {
    ModelOptions mo;
    mo.batch = B, mo.seq = T;
    mo.attn_block = block;
    TrainModel tm(params, mo);
    std::vector<std::vector<float>> logits;
    tm.Step(tokens.data(), false, 1.0f, &logits);
    double err = 0, err_late = 0;
    for (int64_t r = 0; r < B * T; ++r) {
      const double e = RowError(logits[0].data() + r * V, ws.logits.data() + r * V, V);
      err = std::max(err, e);
      if (r % T >= 32) err_late = std::max(err_late, e);
    }
    EXPECT_LE(err, 1e-4) << "block " << block;
    std::printf("block %lld: train vs engine logits, max rel err %.2e (positions >= 32: %.2e)\n", (long long)block,
                err, err_late);
    if (block != 64) continue;
    // The same weights under plain RoPE: the engine's logits move well past the bound.
    const std::string plain = dir + "-plain";
    std::filesystem::create_directories(plain);
    std::filesystem::copy_file(dir + "/model.safetensors", plain + "/model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    {
      std::ofstream(plain + "/config.json") << YarnConfigJson(2, false);
    }
    auto no_yarn = Model::Load(plain);
    ASSERT_TRUE(no_yarn.ok()) << no_yarn.status().message();
    KvCache c2 = (*no_yarn)->NewCache(B, T);
    Workspace ws2;
    ASSERT_TRUE((*no_yarn)->Forward(batch, c2, ws2).ok());
    double err_plain = 0;
    for (int64_t r = 0; r < B * T; ++r)
      err_plain = std::max(err_plain, RowError(logits[0].data() + r * V, ws2.logits.data() + r * V, V));
    EXPECT_GT(err_plain, 1e-2) << "YaRN made no difference: the comparison would not see it";
    std::printf("train (YaRN) vs engine without YaRN: max rel err %.2e\n", err_plain);
    std::filesystem::remove_all(plain);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train
