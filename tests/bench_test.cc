// The benchmark path on a tiny checkpoint (tests/golden): every reported
// field is present and consistent (bytes per token from the experts that
// actually ran, rooflines from the measured bandwidth, memory figures), not
// how fast anything is.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/stats.h"
#include "runtime/bench.h"
#include "runtime/bench_spec.h"

namespace dsv3 {
namespace {

TEST(Bench, SmokeOnTinyModelReportsConsistentFields) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_fp8");
  ASSERT_TRUE(model.ok());
  const Model& m = **model;
  BenchOptions o;
  o.prompt_tokens = 16, o.decode_steps = 3, o.batches = {1, 3}, o.repetitions = 1;
  o.membw_bytes = 8 << 20, o.membw_reps = 1, o.threads = 1;
  auto r = RunBenchmark(m, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(r->prefill_tokens_per_s, 0);
  EXPECT_NEAR(r->prefill_flops, PrefillFlops(m.config(), 16), 1.0);
  EXPECT_GT(r->membw_bytes_per_s, 0);
  EXPECT_GT(r->fma_peak_flops, 0);
  EXPECT_GT(r->prefill_fraction_of_peak, 0);
  ASSERT_EQ(r->decode.size(), 2u);
  const int64_t K = m.config().num_experts_per_tok, E = m.config().n_routed_experts;
  for (const DecodeResult& d : r->decode) {
    EXPECT_EQ(d.steps, 3);
    EXPECT_GT(d.tokens_per_s, 0);
    EXPECT_GE(d.experts_per_layer, K);
    EXPECT_LE(d.experts_per_layer, std::min(E, d.batch * K));
    EXPECT_NEAR(d.weight_bytes_per_token * d.batch, m.DecodeWeightBytes(d.experts_per_layer), 1.0 * d.batch);
    EXPECT_NEAR(d.roofline_tokens_per_s, r->membw_bytes_per_s / (d.weight_bytes_per_token + d.kv_bytes_per_token),
                1e-6 * d.roofline_tokens_per_s);
    EXPECT_GT(d.fraction_of_roofline, 0);
    EXPECT_TRUE(std::isfinite(d.achieved_bytes_per_s));
    // Mean context of the timed steps: the prompt-free cache grows 1..steps+1.
    EXPECT_NEAR(d.flops_per_token, DecodeFlops(m.config(), 1.0 + (d.steps + 1) / 2.0), 1.0);
    EXPECT_NEAR(d.flop_bound_tokens_per_s, r->fma_peak_flops / d.flops_per_token, 1e-6 * d.flop_bound_tokens_per_s);
    EXPECT_EQ(d.bound_tokens_per_s, std::min(d.roofline_tokens_per_s, d.flop_bound_tokens_per_s));
    EXPECT_NEAR(d.fraction_of_bound, d.tokens_per_s / d.bound_tokens_per_s, 1e-9);
  }
  EXPECT_EQ(r->decode[0].experts_per_layer, K);  // batch 1 runs exactly top-k
  // One token over one row costs what a one-token prefill does; each further
  // row adds 2 flops per multiply-add of scores (rc + dr) and values (rc),
  // every head of every layer.
  const Config& c = m.config();
  EXPECT_NEAR(DecodeFlops(c, 1.0), PrefillFlops(c, 1), 1.0);
  EXPECT_NEAR(DecodeFlops(c, 101.0) - DecodeFlops(c, 1.0),
              100.0 * 2 * c.num_hidden_layers * c.num_attention_heads * (2 * c.kv_lora_rank + c.qk_rope_head_dim), 1e-3);
  EXPECT_GE(r->peak_rss_bytes, r->rss_bytes);
  EXPECT_GT(r->rss_bytes, 0u);
  EXPECT_GT(r->weight_bytes, 0u);
  const auto j = nlohmann::json::parse(BenchJson(*r));
  EXPECT_GT(j["prefill_tokens_per_s"].get<double>(), 0);
  EXPECT_TRUE(j["decode_tokens_per_s"].contains("1"));
  EXPECT_TRUE(j["decode_tokens_per_s"].contains("3"));
  EXPECT_EQ(j["decode"].size(), 2u);
}

// Bytes per decode token at batch 1 = every matrix a token touches: the
// active parameters minus embedding (one row), norms and the W_uk half of
// kv_b (replaced by its transposed copy, same size), at their stored sizes.
TEST(Bench, DecodeBytesMatchActiveParameters) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_bf16");
  ASSERT_TRUE(model.ok());
  const Config& c = (*model)->config();
  const ModelStats s = ComputeStats(c);
  const int64_t norms = c.num_hidden_layers * (2 * c.hidden_size + c.q_lora_rank + c.kv_lora_rank) + c.hidden_size;
  const int64_t biases = (c.num_hidden_layers - c.first_k_dense_replace) * c.n_routed_experts;
  const double params = static_cast<double>(s.active_params - s.embedding_params - norms - biases);
  EXPECT_EQ((*model)->DecodeWeightBytes(c.num_experts_per_tok), static_cast<uint64_t>(2 * params));  // all BF16
}

TEST(Bench, BadOptionsAreErrors) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_fp8");
  ASSERT_TRUE(model.ok());
  BenchOptions o;
  o.batches = {0};
  EXPECT_FALSE(RunBenchmark(**model, o).ok());
}

// `bench --spec mtp` on the tiny golden checkpoint with an MTP layer: greedy
// speculation reproduces the plain continuation, the counts add up per draft
// position, and every cost is relative to the one-token decode step.
TEST(Bench, SpecSmokeOnTinyMtpModel) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_bf16");
  ASSERT_TRUE(model.ok());
  SpecBenchOptions o;
  o.draft_tokens = {1, 3}, o.prompt_tokens = 8, o.new_tokens = 6, o.repetitions = 1;
  auto r = RunSpecBenchmark(**model, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(r->baseline_tokens_per_s, 0);
  ASSERT_EQ(r->runs.size(), 2u);
  for (const SpecRun& run : r->runs) {
    const SpecStats& s = run.stats;
    EXPECT_TRUE(run.same_output) << "K=" << run.draft_tokens;
    EXPECT_GT(run.tokens_per_s, 0);
    EXPECT_NEAR(run.speedup, run.tokens_per_s / r->baseline_tokens_per_s, 1e-9);
    ASSERT_EQ(s.proposed_at.size(), static_cast<size_t>(run.draft_tokens));
    EXPECT_EQ(s.drafted, s.rounds * run.draft_tokens);
    int64_t accepted = 0;
    for (int p = 0; p < run.draft_tokens; ++p) {
      EXPECT_EQ(s.proposed_at[p], s.rounds);
      if (p > 0) {
        EXPECT_LE(s.accepted_at[p], s.accepted_at[p - 1]);  // a prefix is accepted
      }
      accepted += s.accepted_at[p];
    }
    EXPECT_EQ(accepted, s.accepted);
    EXPECT_EQ(s.emitted, o.new_tokens);
    // 5 tokens after the prefill's first, at most K+1 per round.
    EXPECT_GE(s.rounds, (o.new_tokens - 1 + run.draft_tokens) / (run.draft_tokens + 1));
    EXPECT_LE(s.rounds, o.new_tokens - 1);
    EXPECT_NEAR(TokensPerRound(s), 1.0 + static_cast<double>(s.accepted) / s.rounds, 1e-12);
    EXPECT_GT(run.predicted_speedup, 0);
  }
  EXPECT_EQ(r->decode.tokens, 1);
  EXPECT_EQ(r->decode.relative, 1.0);
  EXPECT_EQ(r->draft.tokens, 1);
  EXPECT_GT(r->draft.relative, 0);
  const int64_t K = (*model)->config().num_experts_per_tok;
  EXPECT_EQ(r->decode.experts_per_layer, K);
  ASSERT_EQ(r->verify.size(), 2u);
  EXPECT_EQ(r->verify[0].tokens, 2);
  EXPECT_EQ(r->verify[1].tokens, 4);
  for (const SpecCost& c : r->verify) {
    EXPECT_NEAR(c.relative, c.seconds / r->decode.seconds, 1e-9);
    EXPECT_GE(c.experts_per_layer, K);
  }
  const auto j = nlohmann::json::parse(SpecBenchJson(*r));
  EXPECT_EQ(j["spec"]["runs"].size(), 2u);
  EXPECT_EQ(j["spec"]["runs"][1]["acceptance_per_position"].size(), 3u);
  EXPECT_EQ(j["spec"]["verify"][1]["tokens"], 4);
  EXPECT_GT(j["spec"]["baseline_tokens_per_s"].get<double>(), 0);
}

TEST(Bench, SpecNeedsAnMtpLayer) {
  auto model = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v2lite_tiny_bf16");
  ASSERT_TRUE(model.ok());
  auto r = RunSpecBenchmark(**model, SpecBenchOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no MTP layer"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
