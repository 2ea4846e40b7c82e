// Chat prompts without a template engine: the chat_template string found in
// tokenizer_config.json is recognised (by its FNV-1a hash or exact text) as
// one of the formats implemented natively here, and conversations are
// rendered with that format's semantics, byte-for-byte what the Jinja
// template produces (tests/node checks this with @huggingface/jinja).
//
// Formats:
//  - kDeepSeekV3: DeepSeek-V3's template (Dec 2024), with its quirks kept:
//    system prompts joined by "\n\n" after BOS; tool-call openers only on the
//    first tool-call message of a conversation; a single call never closed.
//  - kDsv3: the template `dsv3 train-tokenizer` writes: same tokens and
//    layout, but every tool-call message is opened and closed and tool
//    outputs are closed before the next user turn.
// Reasoning: DeepSeek-R1-style `<think>...</think>` in generated text is split
// off by ReasoningParser, and earlier assistant turns are rendered with their
// content only (reasoning is not fed back).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace dsv3 {

struct ToolCall {
  std::string type = "function";
  std::string name, arguments;  // arguments: JSON text
};

struct ChatMessage {
  std::string role;                    // system | user | assistant | tool
  std::optional<std::string> content;  // null only for assistant tool-call turns
  std::vector<ToolCall> tool_calls;
};

// OpenAI-style messages: a JSON array, or an object with a "messages" array.
// Content may be a string, null, or a list of {"type":"text","text":...}
// parts (joined); tool-call arguments may be a string or a JSON object
// (serialised compactly). Errors name the message index and field.
Expected<std::vector<ChatMessage>> ParseChatMessages(const nlohmann::json& j, const std::string& label);
Expected<std::vector<ChatMessage>> ParseChatMessagesText(std::string_view text, const std::string& label);

enum class ChatFormatKind { kDeepSeekV3, kDsv3 };

// The Jinja text of the kDsv3 format (written into tokenizer_config.json).
extern const char kDsv3ChatTemplate[];

uint64_t Fnv1a64(std::string_view s);

class ChatFormat {
 public:
  // Recognises `chat_template`; bos/eos are the tokenizer's token contents.
  // Unknown or empty templates give an error suggesting --raw-prompt.
  static Expected<ChatFormat> FromTemplate(const std::string& chat_template, const std::string& bos_token,
                                           const std::string& eos_token);

  Expected<std::string> Render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  ChatFormatKind kind() const { return kind_; }
  const char* name() const { return kind_ == ChatFormatKind::kDeepSeekV3 ? "deepseek-v3" : "dsv3"; }

 private:
  std::string RenderDeepSeekV3(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  std::string RenderDsv3(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  ChatFormatKind kind_ = ChatFormatKind::kDeepSeekV3;
  std::string bos_, eos_;
};

// Splits streamed model output into reasoning (inside <think>...</think>)
// and the answer. Tags may arrive split across chunks; the leading newlines
// of each part are dropped (R1 writes "<think>\n...\n</think>\n\n").
class ReasoningParser {
 public:
  explicit ReasoningParser(bool start_in_reasoning = false) : in_reasoning_(start_in_reasoning) {}
  void Add(std::string_view text, std::string& reasoning, std::string& content);
  void Flush(std::string& reasoning, std::string& content);
  bool in_reasoning() const { return in_reasoning_; }

 private:
  void Emit(std::string_view text, std::string& reasoning, std::string& content);
  bool in_reasoning_;
  bool reasoning_started_ = false, content_started_ = false;
  std::string held_;  // a possible partial tag at the end of the last chunk
};

}  // namespace dsv3
