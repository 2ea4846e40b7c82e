// Single-sequence generation: prefill the prompt (in bounded chunks), then
// decode one token per step through the latent cache, sampling each token and
// handing it to a callback as soon as it exists.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/step_runner.h"

namespace dsv3 {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  bool stop_at_eos = true;             // stop on any of config.eos_token_ids
  std::vector<int32_t> stop_token_ids;  // extra stop tokens
  int64_t prefill_chunk = 256;          // tokens per prefill forward
  std::shared_ptr<const TokenGrammar> grammar;  // constrained decoding (token_constraint.h); null: none
  // Runs each forward (under mpirun: data_parallel.h, attention on the rank
  // owning the sequence); null: the model directly.
  StepRunner* runner = nullptr;
};

struct GenerateStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  bool stopped_by_token = false;
};

// Called with each new token; return false to stop generating.
using TokenCallback = std::function<bool(int32_t token)>;

Expected<std::vector<int32_t>> Generate(const Model& model, std::span<const int32_t> prompt,
                                        const GenerateOptions& options, const TokenCallback& on_token,
                                        GenerateStats* stats = nullptr);

}  // namespace dsv3
