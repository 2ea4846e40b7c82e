// A Hugging Face byte-level BPE tokenizer loaded from tokenizer.json (+ the
// optional tokenizer_config.json beside it): text -> ids and ids -> text,
// producing the same ids as HF `tokenizers` for the files it accepts.
//
// Encoding: invalid UTF-8 is first repaired (each maximal invalid subpart ->
// U+FFFD, what node/Rust do when reading such bytes as a string); added
// tokens are cut out (leftmost-longest); each remaining segment is
// pre-tokenized and every piece is BPE-encoded. Decoding concatenates the
// tokens' bytes and repairs invalid UTF-8 the same way. Encode/Decode are
// const and thread-safe (a mutex guards the word cache and the scratch).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"

namespace dsv3 {

// What tokenizer_config.json says (every field optional).
struct TokenizerConfig {
  std::string bos_token, eos_token, pad_token;  // contents, "" when unset
  bool add_bos_token = false, add_eos_token = false;
  std::string chat_template;  // "" when absent
};

struct EncodeOptions {
  bool add_bos = false;  // prepend the BOS id (error-free no-op without one)
};

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json.
  static Expected<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  // From file contents; `config_json` may be empty. Labels name the sources.
  static Expected<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json, std::string_view config_json,
                                                       const std::string& tokenizer_label,
                                                       const std::string& config_label);

  // Text -> ids. `repaired` (optional) is set when the input was not valid
  // UTF-8 and had to be repaired first.
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}, bool* repaired = nullptr) const;
  Status EncodeInto(std::string_view text, std::vector<int32_t>& ids, bool* repaired = nullptr) const;

  // Ids -> text (invalid UTF-8 from partial tokens becomes U+FFFD); an id
  // outside the vocabulary is an error naming it.
  Expected<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // Appends the raw bytes of one token (may be part of a UTF-8 character).
  Status AppendTokenBytes(int32_t id, std::string& out) const;

  int32_t vocab_size() const { return vocab_size_; }  // max id + 1
  bool IsValidId(int32_t id) const;
  bool IsSpecial(int32_t id) const;
  bool IsAdded(int32_t id) const;  // an added token (special or not: DeepSeek's tool-call markers are not special)
  int32_t TokenId(std::string_view content) const;  // added token or vocab entry, -1 if none
  int32_t bos_id() const { return bos_id_; }          // -1 when none
  int32_t eos_id() const { return eos_id_; }
  const TokenizerConfig& config() const { return config_; }
  const AddedVocabulary& added() const { return added_; }

 private:
  Tokenizer() = default;
  Status ParseTokenizerJson(std::string_view text, const std::string& label);
  Status ParseConfigJson(std::string_view text, const std::string& label);
  Status EncodeValid(std::string_view text, std::vector<int32_t>& ids) const;

  Bpe bpe_;
  PreTokenizer pre_;
  AddedVocabulary added_;
  std::vector<int32_t> added_index_;      // id -> index into added_.tokens(), -1 if not added
  std::vector<std::string> added_bytes_;  // per added token: bytes the ByteLevel decoder yields
  TokenizerConfig config_;
  int32_t vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1;

  // Scratch reused across calls; guarded so Encode stays const + safe.
  mutable std::mutex mutex_;
  mutable PreTokenizerScratch scratch_;
  mutable std::vector<TextSegment> segments_;
  mutable std::vector<std::string_view> pieces_;
};

// The id sequence HF would print for `text`, as "1 2 3" (used by tests/CLI).
std::string JoinIds(std::span<const int32_t> ids);

}  // namespace dsv3
