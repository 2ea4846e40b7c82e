// tokenizer.json / tokenizer_config.json loading, encode and decode; see
// tokenizer.h.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/json_depth.h"
#include "core/json_fields.h"
#include "core/mapped_file.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsv3 {

using nlohmann::json;

namespace {

Expected<json> ParseJson(std::string_view text, const std::string& label) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, label));
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Error(label + ": not valid JSON");
  if (!j.is_object()) return Status::Error(label + ": top level must be a JSON object");
  return j;
}

// Checks the parts of tokenizer.json dsv3 does not implement beyond "none".
Status CheckUnsupported(const json& j, const std::string& label) {
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    const bool empty_seq = n.is_object() && StringField(n, "type") == "Sequence" && n.contains("normalizers") &&
                           n["normalizers"].is_array() && n["normalizers"].empty();
    if (!empty_seq)
      return Status::Error(label + ": normalizer of type '" + StringField(n, "type", "?") +
                           "' is not supported (dsv3 reads byte-level BPE tokenizers without a normalizer)");
  }
  if (!j.contains("decoder") || !j["decoder"].is_object() || StringField(j["decoder"], "type") != "ByteLevel")
    return Status::Error(label + ": decoder must be of type 'ByteLevel' (dsv3 reads byte-level BPE tokenizers)");
  const json& m = j["model"];
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"] != 0)
    return Status::Error(label + ": model.dropout is not supported (must be null)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && !m[key].is_null() && m[key] != "")
      return Status::Error(label + ": model." + key + " is not supported (must be null)");
  if (BoolField(m, "byte_fallback", false))
    return Status::Error(label + ": model.byte_fallback is not supported with a byte-level alphabet");
  return Status::Ok();
}

// model.merges in either form: "left right" strings or [left, right] pairs.
Expected<std::vector<std::pair<std::string, std::string>>> ParseMerges(const json& merges, const std::string& label) {
  if (!merges.is_array()) return Status::Error(label + ": model.merges must be an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  std::string a, b;
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& m = merges[r];
    std::string left, right;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        return Status::Error(label + ": model.merges[" + std::to_string(r) + "] must be \"left right\" (one space)");
      left = s.substr(0, sp), right = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      return Status::Error(label + ": model.merges[" + std::to_string(r) + "] must be a string or a [left, right] pair");
    }
    // A part outside the byte alphabet can never be formed, so the merge never fires.
    if (!byte_level::Decode(left, &a) || !byte_level::Decode(right, &b)) continue;
    out.emplace_back(a, b);
  }
  return out;
}

// Ids index tables with one entry per id up to the largest, so one number
// in a crafted tokenizer.json could ask for gigabytes. Real vocabularies are
// dense (DeepSeek-V3: 129,280 ids, all used), so the largest id may exceed
// the number of tokens by at most kMaxUnusedIds, and no id may pass the
// vocabulary limit dsv3 accepts in a config (ConfigLimits::kVocab).
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;
constexpr int64_t kMaxUnusedIds = 1 << 16;

Status CheckIdSpan(int64_t max_id, size_t tokens, const std::string& what) {
  if (max_id > kMaxTokenId || max_id >= static_cast<int64_t>(tokens) + kMaxUnusedIds)
    return Status::Error(what + ": id " + std::to_string(max_id) + " for " + std::to_string(tokens) +
                         " tokens (ids must be below " + std::to_string(kMaxTokenId + 1) +
                         " and leave fewer than " + std::to_string(kMaxUnusedIds) + " ids unused)");
  return Status::Ok();
}

Expected<AddedToken> ParseAddedToken(const json& t, const std::string& label) {
  if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
      !t["content"].is_string())
    return Status::Error(label + " needs an integer 'id' and a string 'content'");
  AddedToken a;
  const int64_t id = t["id"].is_number_unsigned() && t["id"].get<uint64_t>() > INT64_MAX ? -1 : t["id"].get<int64_t>();
  if (id < 0 || id > kMaxTokenId)
    return Status::Error(label + ".id must be in [0, " + std::to_string(kMaxTokenId) + "]");
  a.id = static_cast<int32_t>(id);
  a.content = t["content"].get<std::string>();
  if (a.content.empty()) return Status::Error(label + ".content must not be empty");
  for (auto [key, field] : {std::pair{"special", &a.special}, {"normalized", &a.normalized}, {"lstrip", &a.lstrip},
                            {"rstrip", &a.rstrip}, {"single_word", &a.single_word}}) {
    if (!t.contains(key)) continue;
    if (!t[key].is_boolean()) return Status::Error(label + "." + key + " must be true or false");
    *field = t[key].get<bool>();
  }
  if (!t.contains("normalized")) a.normalized = !a.special;  // HF's default
  return a;
}

// A token field of tokenizer_config.json: a string or {"content": ...}.
Status ReadTokenField(const json& j, const char* key, const std::string& label, std::string* out) {
  if (!j.contains(key) || j[key].is_null()) return Status::Ok();
  const json& v = j[key];
  if (v.is_string()) {
    *out = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    *out = v["content"].get<std::string>();
  } else {
    return Status::Error(label + ": field '" + key + "' must be a string or an object with 'content'");
  }
  return Status::Ok();
}

}  // namespace

Status Tokenizer::ParseTokenizerJson(std::string_view text, const std::string& label) {
  DSV3_ASSIGN_OR_RETURN(json j, ParseJson(text, label));
  if (!j.contains("model") || !j["model"].is_object()) return Status::Error(label + ": field 'model' is required");
  const json& m = j["model"];
  if (StringField(m, "type", "BPE") != "BPE")
    return Status::Error(label + ": model.type '" + StringField(m, "type", "(not a string)") + "' is not supported (only BPE)");
  DSV3_RETURN_IF_ERROR(CheckUnsupported(j, label));
  bool has_byte_level = false;
  auto pre = PreTokenizer::FromJson(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), &has_byte_level);
  if (!pre.ok()) return pre.status().WithContext(label);
  if (!has_byte_level)
    return Status::Error(label + ": pre_tokenizer has no ByteLevel step (dsv3 reads byte-level BPE tokenizers)");
  pre_ = std::move(*pre);

  if (!m.contains("vocab") || !m["vocab"].is_object()) return Status::Error(label + ": model.vocab must be an object");
  std::vector<std::string> vocab;
  std::vector<bool> mergeable;
  std::string bytes;
  int64_t max_id = -1;
  for (const auto& [token, id_json] : m["vocab"].items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 || id_json.get<int64_t>() > kMaxTokenId)
      return Status::Error(label + ": model.vocab[\"" + token + "\"] must be an id in [0, " +
                           std::to_string(kMaxTokenId) + "]");
    max_id = std::max(max_id, id_json.get<int64_t>());
  }
  DSV3_RETURN_IF_ERROR(CheckIdSpan(max_id, m["vocab"].size(), label + ": model.vocab"));
  for (const auto& [token, id_json] : m["vocab"].items()) {
    const size_t id = id_json.get<size_t>();
    if (id >= vocab.size()) vocab.resize(id + 1), mergeable.resize(id + 1);
    const bool in_alphabet = byte_level::Decode(token, &bytes);
    vocab[id] = in_alphabet ? bytes : token;
    mergeable[id] = in_alphabet;
  }
  DSV3_ASSIGN_OR_RETURN(auto merges, ParseMerges(m.contains("merges") ? m["merges"] : json::array(), label));
  auto bpe = Bpe::Build(std::move(vocab), mergeable, merges, BoolField(m, "ignore_merges", false));
  if (!bpe.ok()) return bpe.status().WithContext(label);
  bpe_ = std::move(*bpe);
  if (m.contains("unk_token") && !m["unk_token"].is_null())
    for (int b = 0; b < 256; ++b)
      if (bpe_.Find(std::string(1, static_cast<char>(b))) < 0)
        return Status::Error(label + ": model.unk_token with bytes missing from the vocabulary is not supported");

  std::vector<AddedToken> added;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) return Status::Error(label + ": added_tokens must be an array");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      DSV3_ASSIGN_OR_RETURN(AddedToken t,
                            ParseAddedToken(j["added_tokens"][i], label + ": added_tokens[" + std::to_string(i) + "]"));
      added.push_back(std::move(t));
    }
  }
  vocab_size_ = bpe_.size();
  for (const auto& t : added) vocab_size_ = std::max(vocab_size_, t.id + 1);
  DSV3_RETURN_IF_ERROR(CheckIdSpan(vocab_size_ - 1, bpe_.size() + added.size(), label + ": added_tokens"));
  added_index_.assign(vocab_size_, -1);
  for (size_t i = 0; i < added.size(); ++i) {
    added_index_[added[i].id] = static_cast<int32_t>(i);
    // The ByteLevel decoder maps a token's characters back to bytes and
    // keeps its text as-is when a character is outside the alphabet.
    added_bytes_.push_back(byte_level::Decode(added[i].content, &bytes) ? bytes : added[i].content);
  }
  added_ = AddedVocabulary(std::move(added));
  return Status::Ok();
}

Status Tokenizer::ParseConfigJson(std::string_view text, const std::string& label) {
  DSV3_ASSIGN_OR_RETURN(json j, ParseJson(text, label));
  DSV3_RETURN_IF_ERROR(ReadTokenField(j, "bos_token", label, &config_.bos_token));
  DSV3_RETURN_IF_ERROR(ReadTokenField(j, "eos_token", label, &config_.eos_token));
  DSV3_RETURN_IF_ERROR(ReadTokenField(j, "pad_token", label, &config_.pad_token));
  for (auto [key, field] : {std::pair{"add_bos_token", &config_.add_bos_token}, {"add_eos_token", &config_.add_eos_token}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_boolean()) return Status::Error(label + ": field '" + key + "' must be true or false");
    *field = j[key].get<bool>();
  }
  if (j.contains("chat_template") && !j["chat_template"].is_null()) {
    const json& t = j["chat_template"];
    if (t.is_string()) {
      config_.chat_template = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const json& e : t)
        if (e.is_object() && StringField(e, "name") == "default" && e.contains("template") && e["template"].is_string())
          config_.chat_template = e["template"].get<std::string>();
    } else {
      return Status::Error(label + ": field 'chat_template' must be a string");
    }
  }
  for (auto [name, content, id] : {std::tuple{"bos_token", &config_.bos_token, &bos_id_},
                                   {"eos_token", &config_.eos_token, &eos_id_}}) {
    if (content->empty()) continue;
    *id = TokenId(*content);
    if (*id < 0) return Status::Error(label + ": " + name + " '" + *content + "' is not a token of tokenizer.json");
  }
  return Status::Ok();
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json, std::string_view config_json,
                                                         const std::string& tokenizer_label,
                                                         const std::string& config_label) {
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  DSV3_RETURN_IF_ERROR(t->ParseTokenizerJson(tokenizer_json, tokenizer_label));
  if (!config_json.empty()) DSV3_RETURN_IF_ERROR(t->ParseConfigJson(config_json, config_label));
  return t;
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string tok_path = (fs::path(dir) / "tokenizer.json").string();
  const std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::Error(dir + ": not a directory (expected a tokenizer or model directory)");
  if (!fs::exists(tok_path, ec)) return Status::Error(tok_path + ": not found");
  DSV3_ASSIGN_OR_RETURN(std::string tok_text, ReadTextFile(tok_path));
  std::string cfg_text;
  if (fs::exists(cfg_path, ec)) {
    DSV3_ASSIGN_OR_RETURN(cfg_text, ReadTextFile(cfg_path));
    if (cfg_text.empty()) return Status::Error(cfg_path + ": empty file");
  }
  return FromJson(tok_text, cfg_text, tok_path, cfg_path);
}

Status Tokenizer::EncodeValid(std::string_view text, std::vector<int32_t>& ids) const {
  added_.Split(text, scratch_.regex, segments_);
  for (const TextSegment& seg : segments_) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    DSV3_RETURN_IF_ERROR(pre_.Split(text.substr(seg.begin, seg.end - seg.begin), scratch_, pieces_));
    for (std::string_view piece : pieces_) bpe_.EncodeWord(piece, ids);
  }
  return Status::Ok();
}

Status Tokenizer::EncodeInto(std::string_view text, std::vector<int32_t>& ids, bool* repaired) const {
  const bool valid = utf8::IsValid(text);
  if (repaired) *repaired = !valid;
  std::lock_guard<std::mutex> lock(mutex_);
  if (valid) return EncodeValid(text, ids);
  const std::string fixed = utf8::Lossy(text);
  return EncodeValid(fixed, ids);
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& options, bool* repaired) const {
  std::vector<int32_t> ids;
  if (options.add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
  const Status s = EncodeInto(text, ids, repaired);
  // Only a PCRE2 resource failure can get here; surface it loudly.
  if (!s.ok()) std::fprintf(stderr, "dsv3: tokenizer: %s\n", s.message().c_str());
  return ids;
}

bool Tokenizer::IsValidId(int32_t id) const {
  return id >= 0 && id < vocab_size_ && (added_index_[id] >= 0 || bpe_.has(id));
}

bool Tokenizer::IsAdded(int32_t id) const { return id >= 0 && id < vocab_size_ && added_index_[id] >= 0; }

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size_ && added_index_[id] >= 0 && added_.tokens()[added_index_[id]].special;
}

int32_t Tokenizer::TokenId(std::string_view content) const {
  if (const AddedToken* t = added_.FindByContent(content)) return t->id;
  std::string bytes;
  if (byte_level::Decode(content, &bytes)) return bpe_.Find(bytes);
  return -1;
}

Status Tokenizer::AppendTokenBytes(int32_t id, std::string& out) const {
  if (!IsValidId(id))
    return Status::Error("token id " + std::to_string(id) + " is not in the vocabulary (size " +
                         std::to_string(vocab_size_) + ")");
  if (added_index_[id] >= 0) out += added_bytes_[added_index_[id]];
  else out += bpe_.bytes(id);
  return Status::Ok();
}

Expected<std::string> Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (skip_special_tokens && IsSpecial(id)) continue;
    DSV3_RETURN_IF_ERROR(AppendTokenBytes(id, bytes));
  }
  if (utf8::IsValid(bytes)) return bytes;
  return utf8::Lossy(bytes);
}

std::string JoinIds(std::span<const int32_t> ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  return out;
}

}  // namespace dsv3
