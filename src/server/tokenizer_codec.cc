// The tokenizer-backed codec: text prompts, chat messages through the model's
// chat format (tools described in the system prompt), and streamed text;
// see text_codec.h.
#include <cstdio>
#include <filesystem>

#include "server/chat_tools.h"
#include "core/json_fields.h"
#include "server/constraints.h"
#include "server/text_codec.h"
#include "tokenizer/chat.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::server {

namespace {

// Same text as `dsv3 run --prompt`: special tokens are kept (the chat
// parser needs the tool-call markers), the stop token is not text, and an id
// the model knows but the tokenizer does not yields nothing.
class TokenizerStream : public TextStream {
 public:
  explicit TokenizerStream(const Tokenizer& tok) : tok_(tok), decoder_(tok) {}
  std::string Add(const TokenEvent& ev) override {
    std::string out;
    if (ev.stop_token || !tok_.IsValidId(ev.token)) return out;
    if (!decoder_.Add(ev.token, out).ok()) out.clear();
    return out;
  }
  std::string Flush() override {
    std::string out;
    decoder_.Flush(out);
    return out;
  }

 private:
  const Tokenizer& tok_;
  StreamDecoder decoder_;
};

class TokenizerCodec : public TextCodec {
 public:
  TokenizerCodec(std::unique_ptr<Tokenizer> tok, std::optional<ChatFormat> format)
      : tok_(std::move(tok)), format_(std::move(format)) {}

  bool has_tokenizer() const override { return true; }
  bool has_chat_format() const override { return format_.has_value(); }
  std::string Describe() const override {
    return "tokenizer.json (" + std::to_string(tok_->vocab_size()) + " ids), chat format " +
           (format_ ? std::string(format_->name()) : std::string("none"));
  }

  Expected<std::vector<int32_t>> EncodePrompt(const std::string& text) const override {
    return tok_->Encode(text, {.add_bos = tok_->config().add_bos_token});
  }

  Expected<ChatPrompt> EncodeChat(nlohmann::json messages, const nlohmann::json& tools) const override {
    if (!format_)
      return Status::Error("this model's tokenizer_config.json has no chat template dsv3 knows: use /v1/completions");
    for (auto& m : messages)  // OpenAI's newer name for a system message
      if (m.is_object() && StringField(m, "role") == "developer") m["role"] = "system";
    ApiError error;
    auto with_tools = AddToolsToMessages(std::move(messages), tools, &error);
    if (!with_tools) return Status::Error(error.message);
    DSV3_ASSIGN_OR_RETURN(std::vector<ChatMessage> parsed, ParseChatMessages(*with_tools, "messages"));
    with_tools.reset();  // the JSON tree is done with; only the parsed messages are rendered
    DSV3_ASSIGN_OR_RETURN(std::string text, format_->Render(parsed, /*add_generation_prompt=*/true));
    ChatPrompt p;
    p.ids = tok_->Encode(text);  // the template starts with BOS itself
    const std::string_view t = text;
    p.starts_in_reasoning = t.ends_with("<think>") || t.ends_with("<think>\n");
    return p;
  }

  std::unique_ptr<TextStream> NewStream(bool) const override { return std::make_unique<TokenizerStream>(*tok_); }

  std::string TokenString(int32_t id) const override {
    const int32_t ids[1] = {id};
    auto s = tok_->Decode(ids);  // lossy: a partial UTF-8 character shows as U+FFFD
    return s.ok() ? *s : std::string();
  }
  std::string TokenBytes(int32_t id) const override {
    std::string b;
    if (!tok_->AppendTokenBytes(id, b).ok()) b.clear();
    return b;
  }
  std::vector<int32_t> StopTokens() const override {
    if (tok_->eos_id() >= 0) return {tok_->eos_id()};
    return {};
  }
  TokenVocabulary Vocabulary(int64_t model_vocab) const override { return VocabularyOf(*tok_, model_vocab); }
  int32_t SpecialTokenId(const std::string& text) const override {
    const int32_t id = tok_->TokenId(text);
    return id >= 0 && tok_->IsAdded(id) ? id : -1;
  }

 private:
  std::unique_ptr<Tokenizer> tok_;
  std::optional<ChatFormat> format_;
};

}  // namespace

Expected<std::unique_ptr<TextCodec>> LoadTextCodec(const std::string& dir, int64_t model_vocab, bool quiet) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json", ec)) return NewIdCodec();
  DSV3_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::Load(dir));
  if (tok->vocab_size() > model_vocab)
    return Status::Error(dir + "/tokenizer.json: vocabulary of " + std::to_string(tok->vocab_size()) +
                         " ids does not fit the model's vocab_size " + std::to_string(model_vocab));
  std::optional<ChatFormat> format;
  const TokenizerConfig& cfg = tok->config();
  auto f = ChatFormat::FromTemplate(cfg.chat_template, cfg.bos_token, cfg.eos_token);
  if (f.ok()) {
    format = std::move(*f);
  } else if (!quiet) {
    std::fprintf(stderr, "dsv3 serve: warning: %s; /v1/chat/completions is disabled\n", f.status().message().c_str());
  }
  return std::unique_ptr<TextCodec>(std::make_unique<TokenizerCodec>(std::move(tok), std::move(format)));
}

}  // namespace dsv3::server
