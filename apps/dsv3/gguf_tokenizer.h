// The tokenizer embedded in a GGUF file (tokenizer.ggml.*, as `dsv3 convert
// --to gguf` and llama.cpp's converter write it), rebuilt as the
// tokenizer.json + tokenizer_config.json that dsv3's Tokenizer reads: `run
// --prompt` and `tokenize --tokenizer` on a .gguf use it instead of looking
// for a tokenizer.json beside the file. Only what the metadata determines
// exactly is rebuilt: a "gpt2" (byte-level BPE) vocabulary with DeepSeek-V3's
// pre-tokenizer ("deepseek-v3"); other pre-tokenizers are an error asking for
// --tokenizer DIR. Normal tokens become model.vocab, control tokens special
// added tokens, user-defined tokens non-special added tokens; unused ids
// ("[PAD<id>]") are left out, as they were absent from the original.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/gguf.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

// A .gguf model file (Model::Load's rule: the name, and not a directory).
inline bool IsGgufFile(const std::string& path) {
  std::error_code ec;
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 &&
         !std::filesystem::is_directory(path, ec);
}

namespace gguf_tokenizer_internal {

using nlohmann::json;

// tokenizer.ggml.* token types (llama.cpp's llama_token_type).
enum : int64_t { kNormal = 1, kControl = 3, kUserDefined = 4 };

inline const GgufValue* FindString(const GgufFile& f, const char* key) {
  const GgufValue* v = f.Find(key);
  return v && v->type == GgufType::kString ? v : nullptr;
}

inline json DeepSeekV3PreTokenizer() {
  json steps = json::array();
  for (const char* pattern : kDeepSeekV3Patterns)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

// tokenizer.json's vocab, merges and added tokens from the token arrays.
inline Status BuildModel(const GgufFile& f, json& model, json& added) {
  const std::string& label = f.path();
  const GgufValue* tokens = f.Find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != GgufType::kArray || tokens->array_type != GgufType::kString)
    return Status::Error(label + ": metadata 'tokenizer.ggml.tokens' must be an array of strings");
  const GgufValue* types = f.Find("tokenizer.ggml.token_type");
  if (types && (types->type != GgufType::kArray || types->items.size() != tokens->items.size() ||
                (!types->items.empty() && !types->items[0].is_integer())))
    return Status::Error(label + ": metadata 'tokenizer.ggml.token_type' must be integers, one per token");
  json vocab = json::object();
  for (size_t id = 0; id < tokens->items.size(); ++id) {
    const std::string& text = tokens->items[id].s;
    const int64_t type = types ? types->items[id].AsInt() : kNormal;
    if (type == kNormal) {
      if (!vocab.emplace(text, id).second)
        return Status::Error(label + ": token '" + text + "' appears twice in 'tokenizer.ggml.tokens'");
    } else if (type == kControl || type == kUserDefined) {
      added.push_back({{"id", id}, {"content", text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", type == kControl}});
    }
  }
  json merges = json::array();
  if (const GgufValue* m = f.Find("tokenizer.ggml.merges")) {
    if (m->type != GgufType::kArray || m->array_type != GgufType::kString)
      return Status::Error(label + ": metadata 'tokenizer.ggml.merges' must be an array of strings");
    for (const GgufValue& e : m->items) merges.push_back(e.s);
  }
  model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
           {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
           {"ignore_merges", false}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
  return Status::Ok();
}

// tokenizer_config.json: BOS/EOS by content, add_bos/add_eos, chat template.
inline Expected<json> BuildConfig(const GgufFile& f) {
  json config = json::object();
  const GgufValue* tokens = f.Find("tokenizer.ggml.tokens");
  for (auto [key, field] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token"}, {"tokenizer.ggml.eos_token_id", "eos_token"}}) {
    const GgufValue* v = f.Find(key);
    if (!v) continue;
    if (!v->is_integer() || v->AsInt() < 0 || static_cast<size_t>(v->AsInt()) >= tokens->items.size())
      return Status::Error(f.path() + ": metadata '" + key + "' is not a token id");
    config[field] = tokens->items[v->AsInt()].s;
  }
  for (auto [key, field] : {std::pair{"tokenizer.ggml.add_bos_token", "add_bos_token"}, {"tokenizer.ggml.add_eos_token", "add_eos_token"}})
    if (const GgufValue* v = f.Find(key); v && v->type == GgufType::kBool) config[field] = v->b;
  if (const GgufValue* t = FindString(f, "tokenizer.chat_template")) config["chat_template"] = t->s;
  return config;
}

}  // namespace gguf_tokenizer_internal

// The tokenizer embedded in the GGUF file at `path`; errors name the file
// and the metadata key, or say the file has none.
inline Expected<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const std::string& path) {
  namespace in = gguf_tokenizer_internal;
  DSV3_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  const GgufValue* model = in::FindString(*file, "tokenizer.ggml.model");
  if (!model) return Status::Error(path + ": has no embedded tokenizer (no tokenizer.ggml.model); pass --tokenizer DIR");
  if (model->s != "gpt2")
    return Status::Error(path + ": tokenizer.ggml.model '" + model->s + "' is not supported (dsv3 reads gpt2 byte-level BPE)");
  const GgufValue* pre = in::FindString(*file, "tokenizer.ggml.pre");
  const std::string pre_name = pre ? pre->s : "(none)";
  if (pre_name != "deepseek-v3")
    return Status::Error(path + ": tokenizer.ggml.pre '" + pre_name +
                         "' is not a pre-tokenizer dsv3 can rebuild from GGUF (deepseek-v3 only); pass --tokenizer DIR");
  in::json model_json, added = in::json::array();
  DSV3_RETURN_IF_ERROR(in::BuildModel(*file, model_json, added));
  DSV3_ASSIGN_OR_RETURN(in::json config, in::BuildConfig(*file));
  const in::json tok = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
                        {"normalizer", nullptr}, {"pre_tokenizer", in::DeepSeekV3PreTokenizer()},
                        {"post_processor", nullptr},
                        {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                                     {"use_regex", true}}},
                        {"model", model_json}};
  return Tokenizer::FromJson(tok.dump(), config.dump(), path + " (tokenizer.ggml.*)", path + " (tokenizer.ggml.*)");
}

}  // namespace dsv3::cli
