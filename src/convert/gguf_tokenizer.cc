// tokenizer.json -> tokenizer.ggml.* metadata, and back (the tokenizer a GGUF
// file embeds); see gguf_tokenizer.h.
#include "convert/gguf_tokenizer.h"

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_fields.h"
#include "core/mapped_file.h"
#include "tokenizer/pre_tokenizer.h"

namespace dsv3 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

enum TokenType : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

// llama.cpp marks added tokens that look like <|...|> or <｜...｜> as control.
bool LooksSpecial(const std::string& t) {
  auto wrapped = [&](const std::string& open, const std::string& close) {
    return t.size() >= open.size() + close.size() && t.compare(0, open.size(), open) == 0 &&
           t.compare(t.size() - close.size(), close.size(), close) == 0;
  };
  return wrapped("<|", "|>") || wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>");
}

// A token given as "text" or {"content": "text"} in tokenizer_config.json.
std::string TokenText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

Status ReadMerges(const json& model, const std::string& label, std::vector<std::string>& merges) {
  if (!model.contains("merges")) return Status::Ok();
  const json& m = model["merges"];
  if (!m.is_array()) return Status::Error(label + ": field 'model.merges' must be an array");
  for (const auto& e : m) {
    if (e.is_string()) {
      merges.push_back(e.get<std::string>());
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
    } else {
      return Status::Error(label + ": field 'model.merges' has an entry that is neither \"a b\" nor [a, b]");
    }
  }
  return Status::Ok();
}

}  // namespace

Expected<std::vector<std::pair<std::string, GgufValue>>> TokenizerGgufMetadata(const std::string& dir,
                                                                               const Config& c) {
  std::vector<std::pair<std::string, GgufValue>> kv;
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  std::error_code ec;
  if (!fs::exists(path, ec)) return kv;
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, path));
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("model") || !j["model"].is_object() ||
      !j["model"].contains("vocab") || !j["model"]["vocab"].is_object())
    return Status::Error(path + ": expected a JSON object with an object 'model.vocab'");
  std::vector<std::string> tokens(c.vocab_size);
  std::vector<int32_t> types(c.vocab_size, kUnused);
  std::map<std::string, int64_t> ids;
  for (auto it = j["model"]["vocab"].begin(); it != j["model"]["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) return Status::Error(path + ": vocab entry '" + it.key() + "' is not an id");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= c.vocab_size) continue;  // ids past vocab_size cannot be embedded
    tokens[id] = it.key(), types[id] = kNormal, ids[it.key()] = id;
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        return Status::Error(path + ": an 'added_tokens' entry lacks an integer 'id' or string 'content'");
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= c.vocab_size) continue;
      const std::string content = a["content"].get<std::string>();
      const bool special = BoolField(a, "special", false) || LooksSpecial(content);
      tokens[id] = content, types[id] = special ? kControl : kUserDefined, ids[content] = id;
    }
  for (int64_t i = 0; i < c.vocab_size; ++i)
    if (types[i] == kUnused) tokens[i] = "[PAD" + std::to_string(i) + "]";
  std::vector<std::string> merges;
  DSV3_RETURN_IF_ERROR(ReadMerges(j["model"], path, merges));
  kv.push_back({"tokenizer.ggml.model", GgufValue::Str("gpt2")});
  kv.push_back({"tokenizer.ggml.pre", GgufValue::Str(c.model_type == ModelType::kDeepseekV3 ? "deepseek-v3"
                                                                                             : "deepseek-llm")});
  kv.push_back({"tokenizer.ggml.tokens", GgufValue::StrArray(std::move(tokens))});
  kv.push_back({"tokenizer.ggml.token_type", GgufValue::I32Array(types)});
  if (!merges.empty()) kv.push_back({"tokenizer.ggml.merges", GgufValue::StrArray(std::move(merges))});
  json tc = json::object();
  const std::string tc_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(tc_path, ec)) {
    DSV3_ASSIGN_OR_RETURN(std::string tc_text, ReadTextFile(tc_path));
    DSV3_RETURN_IF_ERROR(CheckJsonDepth(tc_text, tc_path));
    tc = json::parse(tc_text, nullptr, false);
    if (tc.is_discarded() || !tc.is_object()) return Status::Error(tc_path + ": not a JSON object");
  }
  auto special_id = [&](const char* field, int64_t fallback) -> int64_t {
    const std::string t = tc.contains(field) ? TokenText(tc[field]) : "";
    auto it = ids.find(t);
    return it != ids.end() ? it->second : fallback;
  };
  const int64_t bos = special_id("bos_token", c.bos_token_id);
  const int64_t eos = special_id("eos_token", c.eos_token_ids.empty() ? -1 : c.eos_token_ids[0]);
  if (bos >= 0) kv.push_back({"tokenizer.ggml.bos_token_id", GgufValue::U32(static_cast<uint32_t>(bos))});
  if (eos >= 0) kv.push_back({"tokenizer.ggml.eos_token_id", GgufValue::U32(static_cast<uint32_t>(eos))});
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
    kv.push_back({"tokenizer.ggml.add_bos_token", GgufValue::Bool(tc["add_bos_token"].get<bool>())});
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
    kv.push_back({"tokenizer.ggml.add_eos_token", GgufValue::Bool(tc["add_eos_token"].get<bool>())});
  if (tc.contains("chat_template") && tc["chat_template"].is_string())
    kv.push_back({"tokenizer.chat_template", GgufValue::Str(tc["chat_template"].get<std::string>())});
  return kv;
}

namespace {

// ---- GGUF -> tokenizer.json (token types: TokenType above) ----

const GgufValue* FindString(const GgufFile& f, const char* key) {
  const GgufValue* v = f.Find(key);
  return v && v->type == GgufType::kString ? v : nullptr;
}

json DeepSeekV3PreTokenizer() {
  json steps = json::array();
  for (const char* pattern : kDeepSeekV3Patterns)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

// tokenizer.json's vocab, merges and added tokens from the token arrays.
Status BuildModel(const GgufFile& f, json& model, json& added) {
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
Expected<json> BuildConfig(const GgufFile& f) {
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

}  // namespace

Expected<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  const GgufValue* model = FindString(gguf, "tokenizer.ggml.model");
  if (!model) return Status::Error(path + ": has no embedded tokenizer (no tokenizer.ggml.model); pass --tokenizer DIR");
  if (model->s != "gpt2")
    return Status::Error(path + ": tokenizer.ggml.model '" + model->s + "' is not supported (dsv3 reads gpt2 byte-level BPE)");
  const GgufValue* pre = FindString(gguf, "tokenizer.ggml.pre");
  const std::string pre_name = pre ? pre->s : "(none)";
  if (pre_name != "deepseek-v3")
    return Status::Error(path + ": tokenizer.ggml.pre '" + pre_name +
                         "' is not a pre-tokenizer dsv3 can rebuild from GGUF (deepseek-v3 only); pass --tokenizer DIR");
  json model_json, added = json::array();
  DSV3_RETURN_IF_ERROR(BuildModel(gguf, model_json, added));
  DSV3_ASSIGN_OR_RETURN(json config, BuildConfig(gguf));
  const json tok = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
                    {"normalizer", nullptr}, {"pre_tokenizer", DeepSeekV3PreTokenizer()}, {"post_processor", nullptr},
                    {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                                 {"use_regex", true}}},
                    {"model", model_json}};
  return Tokenizer::FromJson(tok.dump(), config.dump(), path + " (tokenizer.ggml.*)", path + " (tokenizer.ggml.*)");
}

}  // namespace dsv3
