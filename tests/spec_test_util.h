// Helpers for the speculative-decoding distribution tests (speculative_test,
// scheduler_spec_test): the exact probability of every short continuation
// under the main model, and a chi-square statistic of sampled counts.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"

namespace dsv3 {

// Exact probability of each 3-token continuation under the main model with
// the given sampling filters and penalties, by enumeration over the filtered support.
inline std::map<std::vector<int32_t>, double> ExactContinuations(const Model& m, const std::vector<int32_t>& prompt,
                                                                 const SamplingOptions& o, int depth) {
  std::map<std::vector<int32_t>, double> out;
  const int64_t V = m.config().vocab_size;
  std::function<void(std::vector<int32_t>&, double)> rec = [&](std::vector<int32_t>& ctx, double p) {
    if (static_cast<int>(ctx.size() - prompt.size()) == depth) {
      out[std::vector<int32_t>(ctx.begin() + prompt.size(), ctx.end())] = p;
      return;
    }
    KvCache cache = m.NewCache(1, ctx.size());
    Workspace ws;
    Batch b;
    for (size_t i = 0; i < ctx.size(); ++i) b.Add(ctx[i], i, 0, i + 1 == ctx.size());
    ASSERT_TRUE(m.Forward(b, cache, ws).ok());
    Sampler s(o);  // penalties count the prompt and the continuation so far
    s.Start(prompt, V);
    for (size_t i = prompt.size(); i < ctx.size(); ++i) s.Accept(ctx[i]);
    std::vector<float> probs(V);
    s.Distribution(ws.logits.data(), V, probs.data());
    for (int64_t v = 0; v < V; ++v) {
      if (probs[v] <= 0) continue;
      ctx.push_back(static_cast<int32_t>(v));
      rec(ctx, p * probs[v]);
      ctx.pop_back();
    }
  };
  std::vector<int32_t> ctx = prompt;
  rec(ctx, 1.0);
  return out;
}

// Runs for a sampling test: a fifth under AddressSanitizer (a Debug + ASan
// build is ~50x slower; there the test is about memory, the statistic stays
// valid with fewer runs, only less sensitive).
inline constexpr int SamplingRuns(int runs) {
#if defined(__SANITIZE_ADDRESS__)
  return runs / 5;
#else
  return runs;
#endif
}

// Chi-square over cells with expected count >= 5 (the others pooled into one).
inline double ChiSquare(const std::map<std::vector<int32_t>, double>& exact,
                        std::map<std::vector<int32_t>, int>& counts, int runs, int* cells) {
  double chi2 = 0, pooled_e = 0, pooled_o = 0;
  *cells = 0;
  for (const auto& [seq, p] : exact) {
    const double e = p * runs, o = counts[seq];
    if (e < 5) {
      pooled_e += e, pooled_o += o;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++*cells;
  }
  if (pooled_e > 0) chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e, ++*cells;
  return chi2;
}

}  // namespace dsv3
