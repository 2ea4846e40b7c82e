// The speculative-decoding benchmark (`dsv3 bench --spec mtp`): greedy
// continuations of one random prompt decoded without speculation and with
// the model's MTP layer drafting K tokens (each K of a list), in the same
// run, with the drafts proposed and accepted (per draft position), tokens per
// main-model forward and tokens/s; and the cost, relative to a one-token
// decode step at the same context, of one verification forward over K+1
// tokens and of one MTP draft step. Those costs with an acceptance rate give
// the expected speed-up: tokens per round / (K * draft + verify(K+1)).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "runtime/speculative.h"

namespace dsv3 {

struct SpecBenchOptions {
  std::vector<int> draft_tokens = {1, 2, 3};  // K values
  int64_t draft_vocab = 0;      // SpecOptions::draft_vocab (0: the whole vocabulary)
  int64_t prompt_tokens = 64;   // random prompt (and the context of the cost steps)
  int64_t new_tokens = 64;      // continuation length; also steps per cost kind
  int repetitions = 3;          // best of
  uint64_t seed = 1;
  std::function<void(const std::string&)> progress;  // status lines; may be empty
};

struct SpecRun {
  int draft_tokens = 0;
  double tokens_per_s = 0;     // tokens after the first / time of the rounds (best repetition)
  double speedup = 0;          // over decoding without speculation
  double predicted_speedup = 0;  // TokensPerRound / (K * draft cost + verify cost), relative costs
  bool same_output = false;    // token-for-token the continuation without speculation
  SpecStats stats;             // of the best repetition
};

struct SpecCost {
  int64_t tokens = 0;          // rows of the forward (1: decode step, K+1: verify)
  double seconds = 0;          // mean per forward
  double relative = 0;         // to the one-token decode step
  double experts_per_layer = 0;  // distinct routed experts run per MoE layer
};

struct SpecBenchResult {
  int64_t prompt_tokens = 0, new_tokens = 0;
  double baseline_tokens_per_s = 0;  // without speculation, same prompt
  std::vector<SpecRun> runs;
  SpecCost decode;                   // one token
  std::vector<SpecCost> verify;      // per K: K+1 tokens
  SpecCost draft;                    // one MTP step (one row, logits included)
};

// Tokens each main-model forward yields: the accepted drafts plus the
// corrected (or bonus) token, 1 + accepted / rounds. (SpecStats::emitted also
// counts the first token, which the prefill gives.)
double TokensPerRound(const SpecStats& s);

// Needs a model with an MTP layer; the error says so otherwise.
Expected<SpecBenchResult> RunSpecBenchmark(const Model& model, const SpecBenchOptions& options);

// The same figures as a JSON document {"spec": {...}} (`dsv3 bench --spec mtp --json`).
std::string SpecBenchJson(const SpecBenchResult& r);

}  // namespace dsv3
