// Prefill-then-decode loop; see generate.h.
#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

namespace dsv3 {

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Expected<std::vector<int32_t>> Generate(const Model& model, std::span<const int32_t> prompt,
                                        const GenerateOptions& options, const TokenCallback& on_token,
                                        GenerateStats* stats) {
  const Config& c = model.config();
  if (prompt.empty()) return Status::Error("the prompt is empty: give at least one token");
  if (options.max_new_tokens < 0) return Status::Error("max_new_tokens must be >= 0");
  DSV3_RETURN_IF_ERROR(options.sampling.Validate(c.vocab_size));
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  if (capacity > c.max_position_embeddings)
    return Status::Error("prompt (" + std::to_string(prompt.size()) + " tokens) + max_new_tokens (" +
                         std::to_string(options.max_new_tokens) + ") exceeds max_position_embeddings " +
                         std::to_string(c.max_position_embeddings));
  KvCache cache = model.NewCache(1, capacity);
  Workspace ws;
  Batch batch;
  StepRunner direct;
  StepRunner& runner = options.runner ? *options.runner : direct;
  Sampler sampler(options.sampling);
  sampler.Start(prompt, c.vocab_size);
  sampler.Constrain(options.grammar, options.max_new_tokens);
  GenerateStats local;
  local.prompt_tokens = static_cast<int64_t>(prompt.size());
  double t0 = Now();
  const int64_t chunk = std::max<int64_t>(options.prefill_chunk, 1);
  for (int64_t start = 0; start < local.prompt_tokens; start += chunk) {
    batch.Clear();
    const int64_t end = std::min(local.prompt_tokens, start + chunk);
    for (int64_t p = start; p < end; ++p) batch.Add(prompt[p], static_cast<int32_t>(p), 0, p == local.prompt_tokens - 1);
    DSV3_RETURN_IF_ERROR(runner.Forward(model, batch, cache, ws));
  }
  local.prefill_seconds = Now() - t0;
  std::vector<int32_t> out;
  out.reserve(options.max_new_tokens);
  t0 = Now();
  int64_t pos = local.prompt_tokens;
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens) {
    const int32_t next = sampler.Sample(ws.logits.data(), c.vocab_size);
    sampler.Accept(next);
    out.push_back(next);
    const bool is_stop =
        (options.stop_at_eos && std::count(c.eos_token_ids.begin(), c.eos_token_ids.end(), next)) ||
        std::count(options.stop_token_ids.begin(), options.stop_token_ids.end(), next);
    if (sampler.constraint_failed())
      return Status::Error("no token of the vocabulary continues a document the JSON schema admits");
    if ((on_token && !on_token(next)) || is_stop) {
      local.stopped_by_token = is_stop;
      break;
    }
    if (static_cast<int64_t>(out.size()) == options.max_new_tokens) break;
    batch.Clear();
    batch.Add(next, static_cast<int32_t>(pos++), 0, true);
    DSV3_RETURN_IF_ERROR(runner.Forward(model, batch, cache, ws));
  }
  local.decode_seconds = Now() - t0;
  local.generated_tokens = static_cast<int64_t>(out.size());
  if (stats) *stats = local;
  return out;
}

}  // namespace dsv3
