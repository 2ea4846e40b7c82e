// Sampling: greedy argmax, seeded determinism, each filter's support, the
// empirical frequencies of many draws against the filtered distribution, and
// the logit adjustments (logit_bias, repetition / frequency / presence
// penalties) against distributions computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "runtime/sampler.h"

namespace dsv3 {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f, -3.0f, 0.0f};

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s(SamplingOptions{});
  EXPECT_EQ(s.Sample(kLogits.data(), kLogits.size()), 1);
  const std::vector<float> tie = {0.0f, 2.0f, 2.0f};
  EXPECT_EQ(s.Sample(tie.data(), 3), 1);
}

// 1e-40 is a subnormal float: 1/T is infinite, so sampling would compute
// NaN probabilities (it always returned the last id). Such a temperature
// means "as cold as can be": greedy. The smallest normal float still samples.
TEST(Sampler, SubnormalTemperatureIsGreedy) {
  for (float t : {1e-40f, 1e-45f, std::numeric_limits<float>::denorm_min()}) {
    SamplingOptions o;
    o.temperature = t, o.seed = 7;
    EXPECT_TRUE(o.greedy()) << t;
    Sampler s(o);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.Sample(kLogits.data(), kLogits.size()), 1) << t;
    std::vector<float> probs(kLogits.size());
    s.Distribution(kLogits.data(), kLogits.size(), probs.data());
    EXPECT_EQ(probs[1], 1.0f);
  }
  SamplingOptions o;
  o.temperature = std::numeric_limits<float>::min(), o.seed = 7;
  EXPECT_FALSE(o.greedy());
  Sampler s(o);
  std::vector<float> probs(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), probs.data());
  for (float p : probs) EXPECT_TRUE(std::isfinite(p));
  EXPECT_EQ(probs[1], 1.0f);  // the coldest sampling temperature is still a point mass on the argmax
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingOptions o;
  o.temperature = 1.0f, o.seed = 1234;
  Sampler a(o), b(o);
  std::vector<int32_t> x, y;
  for (int i = 0; i < 200; ++i) {
    x.push_back(a.Sample(kLogits.data(), kLogits.size()));
    y.push_back(b.Sample(kLogits.data(), kLogits.size()));
  }
  EXPECT_EQ(x, y);
  o.seed = 99;
  Sampler c(o);
  std::vector<int32_t> z;
  for (int i = 0; i < 200; ++i) z.push_back(c.Sample(kLogits.data(), kLogits.size()));
  EXPECT_NE(x, z);
}

std::set<int32_t> Support(const SamplingOptions& o) {
  Sampler s(o);
  std::vector<float> p(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), p.data());
  double sum = 0;
  std::set<int32_t> ids;
  for (size_t i = 0; i < p.size(); ++i) {
    sum += p[i];
    if (p[i] > 0) ids.insert(static_cast<int32_t>(i));
  }
  EXPECT_NEAR(sum, 1.0, 1e-5);
  return ids;
}

TEST(Sampler, FiltersRestrictTheSupport) {
  SamplingOptions o;
  o.temperature = 1.0f;
  EXPECT_EQ(Support(o).size(), kLogits.size());
  o.top_k = 3;
  EXPECT_EQ(Support(o), (std::set<int32_t>{1, 5, 2}));
  o = SamplingOptions{};
  o.temperature = 1.0f, o.top_p = 0.5f;  // p(1)=.33, p(5)=.30 reach 0.5
  EXPECT_EQ(Support(o), (std::set<int32_t>{1, 5}));
  o = SamplingOptions{};
  o.temperature = 1.0f, o.min_p = 0.5f;  // keep p >= p_max/2: logits >= 3 - ln 2
  EXPECT_EQ(Support(o), (std::set<int32_t>{1, 5, 2}));
}

TEST(Sampler, FrequenciesMatchTheDistribution) {
  SamplingOptions o;
  o.temperature = 0.8f, o.top_k = 5, o.seed = 7;
  Sampler s(o);
  std::vector<float> p(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), p.data());
  const int n = 200000;
  std::vector<int> counts(kLogits.size());
  for (int i = 0; i < n; ++i) ++counts[s.Sample(kLogits.data(), kLogits.size())];
  double chi2 = 0;
  int dof = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0);
      continue;
    }
    const double e = p[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++dof;
  }
  EXPECT_LT(chi2, 18.47);  // chi-square 4 dof, p = 0.001
}

// softmax of hand-adjusted logits, for comparison with Distribution().
std::vector<double> Softmax(std::vector<double> x, double temperature) {
  double m = -1e300, sum = 0;
  for (double v : x) m = std::max(m, v);
  for (double& v : x) sum += (v = std::exp((v - m) / temperature));
  for (double& v : x) v /= sum;
  return x;
}

void ExpectDistribution(Sampler& s, const std::vector<double>& want) {
  std::vector<float> p(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), p.data());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], want[i], 1e-6) << "token " << i;
}

TEST(Sampler, PenaltiesMatchHandComputedDistribution) {
  // logits {1, 3, 2.5, -1, .5, 2.9, -3, 0}; prompt {3, 5}; generated {1, 1, 2}.
  SamplingOptions o;
  o.temperature = 0.7f, o.repetition_penalty = 1.3f, o.frequency_penalty = 0.4f, o.presence_penalty = 0.25f;
  o.logit_bias = {{0, 1.5f}, {4, -0.5f}};
  Sampler s(o);
  s.Start(std::vector<int32_t>{3, 5}, kLogits.size());
  for (int32_t t : {1, 1, 2}) s.Accept(t);
  // Bias first; repetition over prompt and generated (divide positive,
  // multiply negative); then count * frequency + presence over generated only.
  const std::vector<double> want = Softmax({1.0 + 1.5,
                                            3.0 / 1.3 - 2 * 0.4 - 0.25,
                                            2.5 / 1.3 - 1 * 0.4 - 0.25,
                                            -1.0 * 1.3,
                                            0.5 - 0.5,
                                            2.9 / 1.3,
                                            -3.0,
                                            0.0},
                                           0.7);
  ExpectDistribution(s, want);
}

TEST(Sampler, PresenceAndFrequencyIgnoreThePrompt) {
  SamplingOptions o;
  o.temperature = 1.0f, o.presence_penalty = 1.0f, o.frequency_penalty = 0.5f;
  Sampler s(o);
  s.Start(std::vector<int32_t>{1, 1, 1, 5}, kLogits.size());  // OpenAI: prompt tokens are not penalised
  ExpectDistribution(s, Softmax({1, 3, 2.5, -1, .5, 2.9, -3, 0}, 1.0));
  s.Accept(5);
  ExpectDistribution(s, Softmax({1, 3, 2.5, -1, .5, 2.9 - 1.5, -3, 0}, 1.0));
}

TEST(Sampler, RollbackRestoresTheHistory) {
  SamplingOptions o;
  o.temperature = 1.0f, o.repetition_penalty = 2.0f, o.frequency_penalty = 0.3f;
  Sampler s(o), t(o);
  s.Start(std::vector<int32_t>{2}, kLogits.size());
  t.Start(std::vector<int32_t>{2}, kLogits.size());
  s.Accept(1), t.Accept(1);
  std::vector<float> before(kLogits.size()), after(kLogits.size());
  s.Distribution(kLogits.data(), kLogits.size(), before.data());
  for (int32_t d : {4, 2, 4, 7}) s.Accept(d);  // drafts: new ids, a prompt id, a repeat
  EXPECT_EQ(s.accepted(), 5);
  s.Rollback(1);
  EXPECT_EQ(s.accepted(), 1);
  s.Distribution(kLogits.data(), kLogits.size(), after.data());
  EXPECT_EQ(before, after);
  s.Accept(7), t.Accept(7);  // the state after rollback keeps working like a fresh one
  s.Distribution(kLogits.data(), kLogits.size(), before.data());
  t.Distribution(kLogits.data(), kLogits.size(), after.data());
  EXPECT_EQ(before, after);
}

TEST(Sampler, GreedyWithPenaltiesIsDeterministicAndAvoidsRepeats) {
  SamplingOptions o;  // greedy
  o.repetition_penalty = 1.5f;
  Sampler a(o), b(o);
  a.Start(std::vector<int32_t>{}, kLogits.size());
  b.Start(std::vector<int32_t>{}, kLogits.size());
  std::vector<int32_t> x, y;
  for (int i = 0; i < 6; ++i) {
    x.push_back(a.Sample(kLogits.data(), kLogits.size()));
    a.Accept(x.back());
    y.push_back(b.Sample(kLogits.data(), kLogits.size()));
    b.Accept(y.back());
  }
  EXPECT_EQ(x, y);
  // 3 -> 3/1.5 = 2 drops below 2.9, then 2.9 -> 1.93 below 2.5, ...
  EXPECT_EQ(x[0], 1);
  EXPECT_EQ(x[1], 5);
  EXPECT_EQ(x[2], 2);
}

TEST(Sampler, BannedTokenIsNeverDrawn) {
  SamplingOptions o;
  o.temperature = 2.0f, o.seed = 3;
  o.logit_bias = {{1, kBanBias}, {5, -100.0f}};
  Sampler s(o);
  for (int i = 0; i < 20000; ++i) {
    const int32_t t = s.Sample(kLogits.data(), kLogits.size());
    ASSERT_NE(t, 1);
    ASSERT_NE(t, 5);
  }
  o.temperature = 0;  // greedy skips the banned argmax too
  Sampler g(o);
  EXPECT_EQ(g.Sample(kLogits.data(), kLogits.size()), 2);
  o.logit_bias = {{6, 100.0f}};  // +100 all but forces a token
  Sampler f(o);
  EXPECT_EQ(f.Sample(kLogits.data(), kLogits.size()), 6);
}

TEST(Sampler, ChoiceSeedsDiffer) {
  EXPECT_EQ(ChoiceSeed(42, 0), 42u);
  std::set<uint64_t> seeds;
  for (int i = 0; i < 64; ++i) seeds.insert(ChoiceSeed(42, i));
  EXPECT_EQ(seeds.size(), 64u);
}

TEST(Sampler, ValidatesPenaltiesAndBias) {
  auto message = [](const SamplingOptions& o, int64_t vocab = 0) { return o.Validate(vocab).message(); };
  SamplingOptions o;
  o.presence_penalty = 2.5f;
  EXPECT_NE(message(o).find("presence_penalty"), std::string::npos);
  o = SamplingOptions{};
  o.frequency_penalty = -2.01f;
  EXPECT_NE(message(o).find("frequency_penalty"), std::string::npos);
  o = SamplingOptions{};
  o.repetition_penalty = 0;
  EXPECT_NE(message(o).find("repetition_penalty"), std::string::npos);
  o = SamplingOptions{};
  o.logit_bias = {{3, 101.0f}};
  EXPECT_NE(message(o).find("logit_bias"), std::string::npos);
  o.logit_bias = {{8, 1.0f}};
  EXPECT_TRUE(o.Validate().ok());
  EXPECT_NE(message(o, 8).find("outside the vocabulary"), std::string::npos);
  o.logit_bias = {{0, -100}, {1, -100}, {1, -100}};
  EXPECT_TRUE(o.Validate(3).ok());
  o.logit_bias.push_back({2, -100});
  EXPECT_NE(message(o, 3).find("bans every token"), std::string::npos);
}

TEST(Sampler, ValidatesParameters) {
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_NE(o.Validate().message().find("temperature"), std::string::npos);
  o = SamplingOptions{};
  o.top_p = 0;
  EXPECT_NE(o.Validate().message().find("top_p"), std::string::npos);
  o = SamplingOptions{};
  o.min_p = 2;
  EXPECT_NE(o.Validate().message().find("min_p"), std::string::npos);
  o = SamplingOptions{};
  o.top_k = -3;
  EXPECT_NE(o.Validate().message().find("top_k"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
