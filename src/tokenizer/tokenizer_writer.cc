// Writes a trained tokenizer as tokenizer.json + tokenizer_config.json in
// the layout HF tokenizers reads (same pre-tokenizer and decoder as
// DeepSeek-V3, merges in the [left, right] pair form); see bpe_trainer.h.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tokenizer/bpe_trainer.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat.h"
#include "tokenizer/pre_tokenizer.h"

namespace dsv3 {

namespace {

using ojson = nlohmann::ordered_json;

ojson AddedTokenJson(int32_t id, const SpecialTokenSpec& s) {
  return ojson{{"id", id},         {"content", s.content}, {"single_word", false}, {"lstrip", false},
               {"rstrip", false},  {"normalized", s.normalized}, {"special", s.special}};
}

ojson PreTokenizerJson() {
  ojson steps = ojson::array();
  for (const char* p : kDeepSeekV3Patterns)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

// The token's text in tokenizer.json: byte-level for learned tokens.
std::string TokenText(const BpeTrainResult& r, size_t id) {
  const bool special = id < std::size(kLeadingSpecialTokens) ||
                       id >= r.vocab.size() - std::size(kTrailingSpecialTokens);
  return special ? r.vocab[id] : byte_level::Encode(r.vocab[id]);
}

Status WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return Status::Error(tmp + ": cannot create file");
    f << text;
    if (!f.good()) return Status::Error(tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Error(path + ": cannot rename from " + tmp + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Status WriteTrainedTokenizer(const BpeTrainResult& r, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(dir + ": cannot create directory: " + ec.message());
  const size_t n_lead = std::size(kLeadingSpecialTokens), n_trail = std::size(kTrailingSpecialTokens);
  ojson added = ojson::array();
  for (size_t i = 0; i < n_lead; ++i) added.push_back(AddedTokenJson(static_cast<int32_t>(i), kLeadingSpecialTokens[i]));
  for (size_t i = 0; i < n_trail; ++i)
    added.push_back(AddedTokenJson(static_cast<int32_t>(r.vocab.size() - n_trail + i), kTrailingSpecialTokens[i]));
  ojson vocab = ojson::object();
  for (size_t id = 0; id < r.vocab.size() - n_trail; ++id) vocab[TokenText(r, id)] = id;
  ojson merges = ojson::array();
  for (const auto& [a, b] : r.merges) merges.push_back({TokenText(r, a), TokenText(r, b)});
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  ojson tok = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer", nullptr},
               {"pre_tokenizer", PreTokenizerJson()},
               {"post_processor", nullptr},
               {"decoder", byte_level},
               {"model",
                {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                 {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}}}};
  auto token = [](const char* content) {
    return ojson{{"__type", "AddedToken"}, {"content", content}, {"lstrip", false}, {"normalized", false},
                 {"rstrip", false}, {"single_word", false}};
  };
  ojson config = {{"add_bos_token", true},
                  {"add_eos_token", false},
                  {"bos_token", token(kLeadingSpecialTokens[0].content)},
                  {"eos_token", token(kLeadingSpecialTokens[1].content)},
                  {"pad_token", token(kLeadingSpecialTokens[2].content)},
                  {"unk_token", nullptr},
                  {"clean_up_tokenization_spaces", false},
                  {"legacy", true},
                  {"model_max_length", 131072},
                  {"tokenizer_class", "LlamaTokenizerFast"},
                  {"chat_template", std::string(kDsv3ChatTemplate)}};
  DSV3_RETURN_IF_ERROR(WriteFile((std::filesystem::path(dir) / "tokenizer.json").string(), tok.dump(1) + "\n"));
  return WriteFile((std::filesystem::path(dir) / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace dsv3
