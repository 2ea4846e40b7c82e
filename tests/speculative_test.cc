// Speculative decoding with the MTP layer must not change what is generated:
// greedy output identical to plain decoding for K = 1..3 (single and batched),
// and with sampling the distribution of continuations must be the main
// model's (chi-square against the exact probabilities, enumerated).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/parallel.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "spec_test_util.h"

namespace dsv3 {
namespace {

std::unique_ptr<Model> Load(const std::string& name) {
  SetNumThreads(1);  // tiny models: threads only add fork/join overhead to thousands of runs
  auto m = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/" + name);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::move(m).value();
}

// Deterministic varied prompts: lengths 1..24 over the vocabulary.
std::vector<std::vector<int32_t>> Prompts(int count, int64_t vocab) {
  std::vector<std::vector<int32_t>> out;
  uint64_t x = 12345;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> p(1 + (i * 7) % 24);
    for (auto& t : p) t = static_cast<int32_t>((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33) % vocab;
    out.push_back(p);
  }
  return out;
}

class SpecGreedy : public ::testing::TestWithParam<const char*> {};

TEST_P(SpecGreedy, IdenticalToPlainDecoding) {
  auto m = Load(GetParam());
  GenerateOptions gen;
  gen.max_new_tokens = 24;
  gen.stop_at_eos = false;
  const auto prompts = Prompts(12, m->config().vocab_size);
  std::vector<std::vector<int32_t>> plain;
  for (const auto& p : prompts) {
    auto out = Generate(*m, p, gen, nullptr);
    ASSERT_TRUE(out.ok());
    plain.push_back(*out);
  }
  for (int k = 1; k <= 3; ++k) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      SpecStats stats;
      auto out = GenerateSpeculative(*m, prompts[i], gen, SpecOptions{k}, nullptr, nullptr, &stats);
      ASSERT_TRUE(out.ok()) << out.status().message();
      EXPECT_EQ(*out, plain[i]) << "K=" << k << " prompt " << i;
      EXPECT_EQ(stats.emitted, gen.max_new_tokens);
    }
    // All prompts in one batch, each sequence accepting its own number of drafts.
    SpeculativeDecoder batched(*m, gen, SpecOptions{k});
    auto outs = batched.Run(prompts, nullptr);
    ASSERT_TRUE(outs.ok()) << outs.status().message();
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ((*outs)[i], plain[i]) << "batched K=" << k << " prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, SpecGreedy, ::testing::Values("v3_tiny_bf16", "v3_tiny_fp8"));

// Penalties and logit_bias see the drafts of a round tentatively: greedy
// output with them is still Generate()'s (batched, sequence s seeded seed + s).
TEST(SpecGreedy, PenaltiesIdenticalToPlainDecoding) {
  auto m = Load("v3_tiny_bf16");
  GenerateOptions gen;
  gen.max_new_tokens = 20;
  gen.stop_at_eos = false;
  gen.sampling.repetition_penalty = 1.8f, gen.sampling.frequency_penalty = 0.6f, gen.sampling.presence_penalty = 0.3f;
  gen.sampling.logit_bias = {{7, kBanBias}, {2, 1.0f}};
  const auto prompts = Prompts(6, m->config().vocab_size);
  for (int k = 1; k <= 3; ++k) {
    SpeculativeDecoder batched(*m, gen, SpecOptions{k});
    auto outs = batched.Run(prompts, nullptr);
    ASSERT_TRUE(outs.ok()) << outs.status().message();
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto plain = Generate(*m, prompts[i], gen, nullptr);
      ASSERT_TRUE(plain.ok());
      EXPECT_EQ((*outs)[i], *plain) << "K=" << k << " prompt " << i;
      EXPECT_EQ(std::count((*outs)[i].begin(), (*outs)[i].end(), 7), 0);
    }
  }
}

TEST(SpecGreedy, StatisticsAddUp) {
  auto m = Load("v3_tiny_fp8");
  GenerateOptions gen;
  gen.max_new_tokens = 64;
  gen.stop_at_eos = false;
  SpecStats stats;
  auto out = GenerateSpeculative(*m, std::vector<int32_t>{0, 5, 9}, gen, SpecOptions{2}, nullptr, nullptr, &stats);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(stats.emitted, 64);
  EXPECT_EQ(stats.drafted, 2 * stats.rounds);
  EXPECT_EQ(stats.accepted_at[0] + stats.accepted_at[1], stats.accepted);
  EXPECT_GE(stats.accepted_at[0], stats.accepted_at[1]);  // position 2 needs position 1
  // Every round emits accepted + 1 tokens (the last round may be cut by the budget).
  EXPECT_LE(stats.emitted, stats.accepted + stats.rounds + 1);
}

// Samples `runs` 3-token continuations of a fixed prompt with speculation
// (seeds seed0..) and returns the chi-square against the exact enumerated
// distribution of the main model (27 cells: temperature 1.5, top-3).
double SampledChiSquare(const Model& m, const SpecOptions& spec, int runs, uint64_t seed0) {
  const std::vector<int32_t> prompt = {0, 17, 42, 5};
  GenerateOptions gen;
  gen.max_new_tokens = 3;
  gen.stop_at_eos = false;
  gen.sampling.temperature = 1.5f;  // flatten so several continuations matter
  gen.sampling.top_k = 3;
  const auto exact = ExactContinuations(m, prompt, gen.sampling, 3);
  EXPECT_EQ(exact.size(), 27u);
  std::map<std::vector<int32_t>, int> counts;
  for (int r = 0; r < runs; ++r) {
    gen.sampling.seed = seed0 + r;
    auto out = GenerateSpeculative(m, prompt, gen, spec, nullptr);
    EXPECT_TRUE(out.ok());
    if (!out.ok()) return 1e30;
    EXPECT_TRUE(exact.count(*out)) << "sampled a continuation outside the filtered support";
    ++counts[*out];
  }
  int cells = 0;
  const double chi2 = ChiSquare(exact, counts, runs, &cells);
  std::printf("  chi-square %.2f over %d cells (%d runs, K=%d, draft vocabulary %lld)\n", chi2, cells, runs,
              spec.draft_tokens, (long long)spec.draft_vocab);
  return chi2;
}

TEST(SpecSampling, DistributionMatchesTheMainModel) {
  auto m = Load("v3_tiny_bf16");
  // 99.9th percentile of chi-square with cells-1 <= 26 degrees of freedom is < 54.1.
  EXPECT_LT(SampledChiSquare(*m, SpecOptions{2}, SamplingRuns(2000), 1000), 54.1);
}

// The draft head over the first N ids gives the first N logits of the whole
// head (FP8 head, N inside a 128-row scale block).
TEST(SpecDraftVocab, LogitsAreThoseOfTheWholeHead) {
  auto m = Load("v3_tiny_fp8");
  const int64_t d = m->config().hidden_size, V = m->config().vocab_size, N = 100;
  KvCache cache = m->NewCache(1, 16);
  Workspace ws;
  Batch b;
  for (int i = 0; i < 6; ++i) b.Add(3 + 7 * i, i, 0, i == 5);
  ASSERT_TRUE(m->Forward(b, cache, ws).ok());
  const std::vector<float> hidden(ws.hidden.begin(), ws.hidden.begin() + 6 * d);  // [6, d]
  ASSERT_TRUE(m->ForwardMtp(0, b, hidden.data(), cache, ws).ok());
  const std::vector<float> whole(ws.logits.begin(), ws.logits.begin() + V);  // [V]
  ASSERT_TRUE(m->ForwardMtp(0, b, hidden.data(), cache, ws, N).ok());
  for (int64_t v = 0; v < N; ++v) EXPECT_NEAR(ws.logits[v], whole[v], 1e-5f * (1 + std::fabs(whole[v]))) << v;
}

TEST(SpecDraftVocab, GreedyIdenticalAndSamplingExact) {
  auto m = Load("v3_tiny_bf16");
  const int64_t V = m->config().vocab_size;
  GenerateOptions gen;
  gen.max_new_tokens = 24;
  gen.stop_at_eos = false;
  for (const auto& p : Prompts(6, V)) {
    auto plain = Generate(*m, p, gen, nullptr);
    ASSERT_TRUE(plain.ok());
    for (int64_t n : {int64_t{1}, V / 2}) {
      auto out = GenerateSpeculative(*m, p, gen, SpecOptions{2, n}, nullptr);
      ASSERT_TRUE(out.ok()) << out.status().message();
      EXPECT_EQ(*out, *plain) << "draft vocab " << n;
    }
  }
  EXPECT_LT(SampledChiSquare(*m, SpecOptions{2, V / 2}, SamplingRuns(1500), 7000), 54.1);
  auto bad = GenerateSpeculative(*m, std::vector<int32_t>{0, 5}, gen, SpecOptions{1, V + 1}, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--draft-vocab"), std::string::npos);
}

TEST(SpecErrors, ModelWithoutMtpIsAClearError) {
  auto m = Load("v2lite_tiny_bf16");
  auto out = GenerateSpeculative(*m, std::vector<int32_t>{0, 1}, GenerateOptions{}, SpecOptions{1}, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("no MTP layer"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
