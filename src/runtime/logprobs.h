// Log-probabilities for the OpenAI `logprobs` / `top_logprobs` fields: the
// model's own distribution (softmax of the raw logits, before temperature and
// filters), the chosen token's value and the k most likely alternatives.
#pragma once

#include <cstdint>

#include "runtime/request.h"

namespace dsv3 {

// Returns log p(token) for logits [vocab] and writes the k most likely tokens
// to top[0..k) (most likely first, lower id first on ties). k <= vocab.
float TokenLogprobs(const float* logits, int64_t vocab, int32_t token, int k, TokenLogprob* top);

}  // namespace dsv3
