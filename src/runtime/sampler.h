// Token sampling: logit adjustments (logit_bias, repetition / frequency /
// presence penalties over the tokens seen so far), then greedy, or
// temperature + top-k + top-p + min-p from a seeded generator (same seed,
// same tokens on every machine: the generator and the uniform draw are our
// own, not the standard library's). The adjusted, filtered distribution is
// exposed so speculative decoding can do exact rejection sampling against it.
//
// Order, as Hugging Face's `generate` and vLLM apply them (after a grammar's
// mask, when decoding is constrained): logit_bias, then
// repetition_penalty, then frequency and presence penalties, then the
// temperature, top_k, top_p and min_p. The penalties need the sequence's
// history: the caller hands the prompt once (Start) and every token the
// sequence keeps (Accept); drafts tried and rejected are rolled back.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"

namespace dsv3 {

// One logit_bias entry. A bias of kBanBias (OpenAI's -100) or below removes
// the token outright, so a banned token can never be drawn.
struct LogitBias {
  int32_t token = 0;
  float bias = 0.0f;  // [-100, 100], added to the token's logit
};
inline constexpr float kBanBias = -100.0f;

struct SamplingOptions {
  float temperature = 0.0f;  // below FLT_MIN (0, or so small 1/T overflows): greedy, argmax with lowest id on ties
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  // OpenAI semantics, over the generated tokens only: the logit of a token
  // generated c > 0 times so far drops by c * frequency_penalty + presence_penalty.
  float presence_penalty = 0.0f;   // [-2, 2]
  float frequency_penalty = 0.0f;  // [-2, 2]
  // HF / CTRL semantics, over the prompt and the generated tokens: a positive
  // logit of a token seen is divided by it, a negative one multiplied.
  float repetition_penalty = 1.0f;  // (0, 10]; 1: off
  std::vector<LogitBias> logit_bias;  // applied before everything else
  uint64_t seed = 0;

  // Names the offending parameter. With `vocab` > 0 also checks that every
  // logit_bias id is in the vocabulary and that not every token is banned.
  Status Validate(int64_t vocab = 0) const;
  // A subnormal temperature would make 1/T infinite and every logit NaN.
  bool greedy() const { return !(temperature >= std::numeric_limits<float>::min()); }
  bool penalized() const { return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f; }
  bool adjusts_logits() const { return penalized() || !logit_bias.empty(); }
};

// The seed of choice `index` of a request asking for n > 1 choices: choice 0
// keeps `seed` (so n = 1 and the first of n agree), the others get streams
// of their own.
uint64_t ChoiceSeed(uint64_t seed, int64_t index);

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  double Uniform();  // [0, 1) with 53 random bits
 private:
  uint64_t s_[4];
};

class GrammarState;
class TokenGrammar;

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  ~Sampler();
  Sampler(Sampler&&) noexcept;

  // Constrained decoding (token_constraint.h): from now on only tokens that
  // keep the output a prefix of a document the grammar admits can be drawn
  // (the mask comes before every other adjustment). Null: unconstrained.
  // max_tokens > 0: the sequence's token budget, within which the document
  // is steered to completion (GrammarState).
  void Constrain(std::shared_ptr<const TokenGrammar> grammar, int64_t max_tokens = 0);
  // No token could continue the document: the sampler fell back to an end
  // token; the caller should end the sequence with an error.
  bool constraint_failed() const;

  // Sizes the penalty state for ids < vocab and records the prompt (the
  // tokens repetition_penalty counts besides the generated ones); call once,
  // before the first Accept. A no-op when no penalty is set.
  void Start(std::span<const int32_t> prompt, int64_t vocab);
  // Records a token the sequence keeps (the penalties count it from now on).
  void Accept(int32_t token);
  // Tokens accepted so far; Rollback(n) forgets all but the first n (drafts
  // a speculative step tried and rejected). Rollback is last-in, first-out.
  int64_t accepted() const { return accepted_; }
  void Rollback(int64_t n);

  // Picks a token from logits [vocab].
  int32_t Sample(const float* logits, int64_t vocab);
  // The greedy pick: argmax of the adjusted logits (lowest id on ties).
  int32_t Greedy(const float* logits, int64_t vocab);
  // The distribution Sample draws from after all adjustments and filters:
  // probs [vocab] (zeros for filtered tokens, sums to 1). Greedy gives a one-hot.
  void Distribution(const float* logits, int64_t vocab, float* probs);
  // Draws from an explicit distribution probs [vocab].
  int32_t SampleFrom(const float* probs, int64_t vocab);
  Rng& rng() { return rng_; }
  const SamplingOptions& options() const { return options_; }

 private:
  // logits [vocab] with logit_bias and penalties applied: `logits` itself
  // when nothing adjusts them, else adjusted_ (sized on first use).
  const float* Adjusted(const float* logits, int64_t vocab);
  void Grow(int32_t token);

  SamplingOptions options_;
  Rng rng_;
  std::vector<float> probs_, adjusted_;
  std::vector<int32_t> order_;
  // Penalty state, indexed by token id (sized by Start; grown if an id is larger).
  std::vector<int32_t> generated_count_;  // times generated so far
  std::vector<uint8_t> in_prompt_;
  std::vector<int32_t> seen_;     // ids in the prompt or generated, in order of first appearance
  std::vector<int32_t> history_;  // accepted tokens, for Rollback
  int64_t accepted_ = 0;
  std::unique_ptr<GrammarState> grammar_;
};

int32_t ArgMax(const float* x, int64_t n);

}  // namespace dsv3
