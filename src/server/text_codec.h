// How the served model's text side works: prompts (text, or chat messages
// through the chat format) to ids, and generated ids back to text as it
// streams. A checkpoint without a tokenizer is served in token-id mode: prompts
// must be token ids and a completion's text is its ids in decimal, separated
// by spaces (exactly what `dsv3 run` prints), so every endpoint and the whole
// serving path work and are testable on tokenizer-less checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "runtime/request.h"
#include "runtime/token_constraint.h"

namespace dsv3::server {

struct ChatPrompt {
  std::vector<int32_t> ids;
  bool starts_in_reasoning = false;  // the template opened <think> for the reply
};

// Incremental detokenizer for one completion: returns only whole UTF-8
// characters, never splitting one across two calls.
class TextStream {
 public:
  virtual ~TextStream() = default;
  virtual std::string Add(const TokenEvent& ev) = 0;
  virtual std::string Flush() = 0;  // whatever is still held at the end
};

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  virtual bool has_tokenizer() const = 0;
  virtual bool has_chat_format() const = 0;
  virtual std::string Describe() const = 0;  // for the startup banner and /v1/models

  virtual Expected<std::vector<int32_t>> EncodePrompt(const std::string& text) const = 0;
  // `messages` by value: callers move a request's (possibly large) chat in.
  virtual Expected<ChatPrompt> EncodeChat(nlohmann::json messages, const nlohmann::json& tools) const = 0;
  // keep_special: special tokens' text stays in the stream (the chat output
  // parser needs tool-call markers); the stop token never produces text.
  virtual std::unique_ptr<TextStream> NewStream(bool keep_special) const = 0;
  // For logprobs: a token's text and its raw bytes.
  virtual std::string TokenString(int32_t id) const = 0;
  virtual std::string TokenBytes(int32_t id) const = 0;
  // Tokens that end generation besides the config's eos_token_id (the
  // tokenizer's EOS), unless a request sets ignore_eos.
  virtual std::vector<int32_t> StopTokens() const = 0;
  // Constrained decoding: every id's bytes and which are added tokens
  // (markers: TokenVocabulary::special; no end tokens, the caller adds
  // those), and an added token's id by its text (-1 when there is none).
  virtual TokenVocabulary Vocabulary(int64_t model_vocab) const = 0;
  virtual int32_t SpecialTokenId(const std::string& text) const = 0;
};

// Token-id mode (no tokenizer in the model directory).
std::unique_ptr<TextCodec> NewIdCodec();

// DIR/tokenizer.json (+ tokenizer_config.json) when present, else token-id
// mode. The vocabulary must fit the model's; an unknown chat template only
// disables chat (with a warning on stderr), it does not stop the server.
Expected<std::unique_ptr<TextCodec>> LoadTextCodec(const std::string& dir, int64_t model_vocab, bool quiet);

}  // namespace dsv3::server
