// Sampling defaults that come from outside the code: the checkpoint's
// `generation_config.json` (Hugging Face's file, which DeepSeek's releases
// ship with their recommended temperature and top_p) and sampling
// parameters given as text (`--top-p 0.95` on the command line, `/set top_p
// 0.95` in `dsv3 chat`). As Hugging Face's `generate` and vLLM do, the file's
// values replace the engine's built-in defaults, and whatever a user sets
// explicitly replaces the file's. The file is untrusted input: read bounded,
// depth-checked before parsing, every field type- and range-checked, errors
// naming the file and the field.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runtime/sampler.h"

namespace dsv3 {

// The sampling fields of a generation_config.json; absent or null fields
// stay empty. Other fields (bos/eos ids, max_length, ...) are not read here.
struct GenerationConfig {
  std::string path;  // the file read; empty when the model has none
  std::optional<bool> do_sample;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;

  bool found() const { return !path.empty(); }
  // "do_sample true, temperature 0.6, top_p 0.95"; "no sampling fields" when
  // the file sets none.
  std::string Describe() const;
};

// The largest generation_config.json read (real ones are a few hundred bytes).
inline constexpr uint64_t kMaxGenerationConfigBytes = 1u << 20;

// MODEL_DIR/generation_config.json. A model without one (no such file, or a
// path that is not a directory, such as a .gguf file) gives an empty config,
// not an error; a file that is present but unreadable or invalid is an error.
Expected<GenerationConfig> LoadGenerationConfig(const std::string& model_path);
// Parses the text of a generation_config.json; `label` names it in errors.
Expected<GenerationConfig> ParseGenerationConfig(std::string_view text, const std::string& label);

// `base` with the file's values laid over it. Hugging Face semantics for
// do_sample: `false` means greedy decoding (temperature 0) whatever the
// temperature field says; absent, the fields given are used as they are (as
// vLLM does). repetition_penalty applies either way.
SamplingOptions ApplyGenerationConfig(const GenerationConfig& config, SamplingOptions base);

// Sets one sampling parameter from text: temperature, top_k, top_p, min_p,
// presence_penalty, frequency_penalty, repetition_penalty, seed, or
// logit_bias ("TOKEN=BIAS", several separated by commas, appended to the
// list). Errors say what is wrong with the value ("'abc' is not a number");
// callers add the flag or command. Ranges are SamplingOptions::Validate's job.
Status SetSamplingParam(SamplingOptions& options, std::string_view name, const std::string& value);
// The names SetSamplingParam takes except logit_bias, in display order.
const std::vector<std::string>& SamplingParamNames();

// One line describing what sampling does: "greedy" or "temperature 0.6,
// top_p 0.95, seed 0", then the penalties and logit_bias entries that are set.
std::string DescribeSampling(const SamplingOptions& options);

}  // namespace dsv3
