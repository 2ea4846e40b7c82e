// Shared by `dsv3 run --prompt` and `dsv3 chat`: loading the tokenizer that
// sits in the model directory (or --tokenizer), checking it against the
// model, and the stop tokens for generation.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

// Where the tokenizer files of a model live: the checkpoint directory, or
// the directory holding a single-file (.gguf) model.
inline std::string TokenizerDirOf(const std::string& model_path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(model_path, ec)) {
    const std::string parent = std::filesystem::path(model_path).parent_path().string();
    return parent.empty() ? "." : parent;
  }
  return model_path;
}

// Loads DIR/tokenizer.json (+ tokenizer_config.json); the vocabulary must
// fit the model's embedding.
inline Expected<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const Model& model, const std::string& dir) {
  auto tok = Tokenizer::Load(dir);
  if (!tok.ok()) return tok.status();
  if ((*tok)->vocab_size() > model.config().vocab_size)
    return Status::Error(dir + "/tokenizer.json: vocabulary of " + std::to_string((*tok)->vocab_size()) +
                         " ids does not fit the model's vocab_size " + std::to_string(model.config().vocab_size));
  return tok;
}

// Text -> ids for the model: invalid UTF-8 is repaired with a warning naming
// `label`, and the BOS id is prepended when tokenizer_config.json asks for it.
// Text that encodes to no tokens is an error naming `label`.
inline Status EncodeForModel(const Tokenizer& tok, std::string_view text, const std::string& label,
                             std::vector<int32_t>& ids) {
  bool repaired = false;
  DSV3_RETURN_IF_ERROR(tok.EncodeInto(text, ids, &repaired).WithContext(label));
  if (ids.empty()) return Status::Error(label + ": the text is empty");
  if (repaired) std::fprintf(stderr, "dsv3: warning: %s is not valid UTF-8; invalid bytes became U+FFFD\n", label.c_str());
  if (tok.config().add_bos_token && tok.bos_id() >= 0) ids.insert(ids.begin(), tok.bos_id());
  return Status::Ok();
}

// Generation also stops at the tokenizer's EOS (config.json may not list it).
inline void AddTokenizerStops(const Tokenizer& tok, GenerateOptions& gen) {
  if (tok.eos_id() >= 0) gen.stop_token_ids.push_back(tok.eos_id());
}

inline bool IsStop(const Model& model, const GenerateOptions& gen, int32_t id) {
  for (int32_t e : model.config().eos_token_ids)
    if (gen.stop_at_eos && e == id) return true;
  for (int32_t s : gen.stop_token_ids)
    if (s == id) return true;
  return false;
}

}  // namespace dsv3::cli
