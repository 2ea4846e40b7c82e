// What a client hands the scheduler (a GenerationRequest: prompt ids, limits,
// sampling, per-token and finish callbacks) and what it gets back (one
// TokenEvent per generated token, then exactly one FinishInfo). Everything is
// token-level: text, stop strings and chat formats live with the caller, which
// can stop a sequence by returning false from on_token.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/sampler.h"

namespace dsv3 {

// The most alternatives a request may ask for per token (OpenAI's limit).
inline constexpr int kMaxTopLogprobs = 20;

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct TokenEvent {
  int32_t token = 0;
  int64_t index = 0;          // 0-based position in the completion
  bool stop_token = false;    // an end-of-sequence or stop_token_ids token (generation ends here)
  float logprob = 0.0f;       // log p(token) under the model (softmax of raw logits); set when logprobs >= 0
  std::span<const TokenLogprob> top;  // the `logprobs` most likely tokens, most likely first
};

enum class FinishReason {
  kStop,       // stop token, or on_token returned false (e.g. a stop string)
  kLength,     // max_tokens reached or the context is full
  kCancelled,  // Cancel() (client went away) or the scheduler shut down
  kTimeout,    // the request's deadline passed
  kError,      // the forward pass failed; `error` says why
};
const char* FinishReasonName(FinishReason reason);

struct FinishInfo {
  FinishReason reason = FinishReason::kStop;
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose latent cache was reused
  int64_t completion_tokens = 0;     // tokens handed to on_token
  std::string error;                 // kError only
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // non-empty, ids < vocab
  int64_t max_tokens = 16;      // >= 1
  SamplingOptions sampling;
  bool stop_at_eos = true;      // stop on the config's eos_token_id(s)
  std::vector<int32_t> stop_token_ids;
  int logprobs = -1;            // -1: none; k in [0, kMaxTopLogprobs]: chosen token + k alternatives
  // Constrained decoding (token_constraint.h): only tokens that keep the
  // output a prefix of a document the grammar admits; null: unconstrained.
  // When no token can continue, the sequence ends with kError.
  std::shared_ptr<const TokenGrammar> grammar;
  double deadline = 0.0;        // MonotonicSeconds() after which it ends with kTimeout; 0: none
  // Called on the scheduler thread for every token; return false to end the
  // sequence after this token (reason kStop). Must be quick and not block.
  std::function<bool(const TokenEvent&)> on_token;
  // Called on the scheduler thread exactly once, last.
  std::function<void(const FinishInfo&)> on_finish;
};

// Seconds on the steady clock (the scheduler's deadlines and timings).
double MonotonicSeconds();

}  // namespace dsv3
