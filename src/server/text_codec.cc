// Token-id mode codec; see text_codec.h.
#include "server/text_codec.h"

namespace dsv3::server {

namespace {

class IdStream : public TextStream {
 public:
  std::string Add(const TokenEvent& ev) override {
    std::string s = first_ ? "" : " ";
    first_ = false;
    return s + std::to_string(ev.token);
  }
  std::string Flush() override { return {}; }

 private:
  bool first_ = true;
};

class IdCodec : public TextCodec {
 public:
  bool has_tokenizer() const override { return false; }
  bool has_chat_format() const override { return false; }
  std::string Describe() const override { return "token ids (no tokenizer.json in the model directory)"; }
  Expected<std::vector<int32_t>> EncodePrompt(const std::string&) const override {
    return Status::Error("this model has no tokenizer (no tokenizer.json in its directory): give \"prompt\" as an "
                         "array of token ids");
  }
  Expected<ChatPrompt> EncodeChat(nlohmann::json, const nlohmann::json&) const override {
    return Status::Error("this model has no tokenizer (no tokenizer.json in its directory), so it has no chat "
                         "format: use /v1/completions with \"prompt\" as an array of token ids");
  }
  std::unique_ptr<TextStream> NewStream(bool) const override { return std::make_unique<IdStream>(); }
  std::string TokenString(int32_t id) const override { return std::to_string(id); }
  std::string TokenBytes(int32_t id) const override { return std::to_string(id); }
  std::vector<int32_t> StopTokens() const override { return {}; }
  TokenVocabulary Vocabulary(int64_t) const override { return {}; }  // ids have no text to constrain
  int32_t SpecialTokenId(const std::string&) const override { return -1; }
};

}  // namespace

std::unique_ptr<TextCodec> NewIdCodec() { return std::make_unique<IdCodec>(); }

}  // namespace dsv3::server
