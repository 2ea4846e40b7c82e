// Native chat formats and the reasoning splitter; see chat.h.
#include "tokenizer/chat.h"

#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_fields.h"

namespace dsv3 {

using nlohmann::json;

namespace {

// DeepSeek's role and tool tokens (U+FF5C delimiters, U+2581 word joiners).
constexpr char kUser[] = "<｜User｜>";
constexpr char kAssistant[] = "<｜Assistant｜>";
constexpr char kCallsBegin[] = "<｜tool▁calls▁begin｜>";
constexpr char kCallsEnd[] = "<｜tool▁calls▁end｜>";
constexpr char kCallBegin[] = "<｜tool▁call▁begin｜>";
constexpr char kCallEnd[] = "<｜tool▁call▁end｜>";
constexpr char kSep[] = "<｜tool▁sep｜>";
constexpr char kOutputsBegin[] = "<｜tool▁outputs▁begin｜>";
constexpr char kOutputsEnd[] = "<｜tool▁outputs▁end｜>";
constexpr char kOutputBegin[] = "<｜tool▁output▁begin｜>";
constexpr char kOutputEnd[] = "<｜tool▁output▁end｜>";

// FNV-1a of DeepSeek-V3's chat_template (tokenizer_config.json, Dec 2024).
constexpr uint64_t kDeepSeekV3TemplateHash = 0xebe3604156dc466aull;

Expected<std::optional<std::string>> ParseContent(const json& m, const std::string& label) {
  if (!m.contains("content") || m["content"].is_null()) return std::optional<std::string>();
  const json& c = m["content"];
  if (c.is_string()) return std::optional<std::string>(c.get<std::string>());
  if (c.is_array()) {
    std::string text;
    for (const json& part : c) {
      if (!part.is_object() || StringField(part, "type") != "text" || !part.contains("text") || !part["text"].is_string())
        return Status::Error(label + ".content: only {\"type\": \"text\", \"text\": ...} parts are supported");
      text += part["text"].get<std::string>();
    }
    return std::optional<std::string>(text);
  }
  return Status::Error(label + ".content must be a string, null or a list of text parts");
}

Expected<ToolCall> ParseToolCall(const json& t, const std::string& label) {
  if (!t.is_object() || !t.contains("function") || !t["function"].is_object())
    return Status::Error(label + " must be an object with a 'function' object");
  const json& f = t["function"];
  ToolCall call;
  if (t.contains("type")) {
    if (!t["type"].is_string()) return Status::Error(label + ".type must be a string");
    call.type = t["type"].get<std::string>();
  }
  if (!f.contains("name") || !f["name"].is_string()) return Status::Error(label + ".function.name must be a string");
  call.name = f["name"].get<std::string>();
  if (!f.contains("arguments")) return Status::Error(label + ".function.arguments is required");
  call.arguments = f["arguments"].is_string() ? f["arguments"].get<std::string>() : f["arguments"].dump();
  return call;
}

}  // namespace

const char kDsv3ChatTemplate[] =
    "{%- if add_generation_prompt is not defined -%}{%- set add_generation_prompt = false -%}{%- endif -%}"
    "{%- set ns = namespace(system='', has_system=false, in_tool=false) -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'system' -%}"
    "{%- if ns.has_system -%}{%- set ns.system = ns.system + '\n\n' -%}{%- endif -%}"
    "{%- set ns.system = ns.system + m['content'] -%}{%- set ns.has_system = true -%}"
    "{%- endif -%}{%- endfor -%}"
    "{{- bos_token + ns.system -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}"
    "{%- if ns.in_tool -%}{{- '<｜tool▁outputs▁end｜>' -}}{%- set ns.in_tool = false -%}{%- endif -%}"
    "{{- '<｜User｜>' + m['content'] -}}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{%- if ns.in_tool -%}{{- '<｜tool▁outputs▁end｜>' -}}{%- set ns.in_tool = false -%}"
    "{%- else -%}{{- '<｜Assistant｜>' -}}{%- endif -%}"
    "{%- if m['content'] is not none -%}{{- m['content'] -}}{%- endif -%}"
    "{%- if m['tool_calls'] -%}{{- '<｜tool▁calls▁begin｜>' -}}"
    "{%- for t in m['tool_calls'] -%}{%- if not loop.first -%}{{- '\n' -}}{%- endif -%}"
    "{{- '<｜tool▁call▁begin｜>' + t['type'] + '<｜tool▁sep｜>' + t['function']['name'] + '\n```json\n' + "
    "t['function']['arguments'] + '\n```' + '<｜tool▁call▁end｜>' -}}"
    "{%- endfor -%}{{- '<｜tool▁calls▁end｜>' -}}{%- endif -%}"
    "{{- eos_token -}}"
    "{%- elif m['role'] == 'tool' -%}"
    "{%- if ns.in_tool -%}{{- '\n<｜tool▁output▁begin｜>' -}}"
    "{%- else -%}{{- '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' -}}{%- set ns.in_tool = true -%}{%- endif -%}"
    "{{- m['content'] + '<｜tool▁output▁end｜>' -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if ns.in_tool -%}{{- '<｜tool▁outputs▁end｜>' -}}"
    "{%- elif add_generation_prompt -%}{{- '<｜Assistant｜>' -}}{%- endif -%}";

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

Expected<std::vector<ChatMessage>> ParseChatMessages(const json& j, const std::string& label) {
  const json* arr = &j;
  std::string where = label;
  if (j.is_object() && j.contains("messages")) arr = &j["messages"], where = label + ": messages";
  if (!arr->is_array()) return Status::Error(label + ": expected an array of messages or {\"messages\": [...]}");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const json& m = (*arr)[i];
    const std::string l = where + "[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return Status::Error(l + " must be an object with a string 'role'");
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool")
      return Status::Error(l + ".role '" + msg.role + "' is not system, user, assistant or tool");
    DSV3_ASSIGN_OR_RETURN(msg.content, ParseContent(m, l));
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (msg.role != "assistant" || !m["tool_calls"].is_array())
        return Status::Error(l + ".tool_calls must be an array on an assistant message");
      for (size_t k = 0; k < m["tool_calls"].size(); ++k) {
        DSV3_ASSIGN_OR_RETURN(ToolCall call, ParseToolCall(m["tool_calls"][k], l + ".tool_calls[" + std::to_string(k) + "]"));
        msg.tool_calls.push_back(std::move(call));
      }
    }
    if (!msg.content && (msg.role != "assistant" || msg.tool_calls.empty()))
      return Status::Error(l + ".content is required (null only on an assistant message with tool_calls)");
    out.push_back(std::move(msg));
  }
  return out;
}

Expected<std::vector<ChatMessage>> ParseChatMessagesText(std::string_view text, const std::string& label) {
  DSV3_RETURN_IF_ERROR(CheckJsonDepth(text, label));
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return Status::Error(label + ": not valid JSON");
  return ParseChatMessages(j, label);
}

Expected<ChatFormat> ChatFormat::FromTemplate(const std::string& chat_template, const std::string& bos_token,
                                              const std::string& eos_token) {
  ChatFormat f;
  f.bos_ = bos_token, f.eos_ = eos_token;
  if (chat_template.empty())
    return Status::Error("tokenizer_config.json has no chat_template (use --raw-prompt to send text as is)");
  if (Fnv1a64(chat_template) == kDeepSeekV3TemplateHash) {
    f.kind_ = ChatFormatKind::kDeepSeekV3;
  } else if (chat_template == kDsv3ChatTemplate) {
    f.kind_ = ChatFormatKind::kDsv3;
  } else {
    return Status::Error("chat_template in tokenizer_config.json is not one dsv3 implements (known: DeepSeek-V3, "
                         "dsv3 train-tokenizer); use --raw-prompt to send text as is");
  }
  return f;
}

Expected<std::string> ChatFormat::Render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  for (size_t i = 0; i < messages.size(); ++i)
    if (!messages[i].content && (messages[i].role != "assistant" || messages[i].tool_calls.empty()))
      return Status::Error("messages[" + std::to_string(i) + "].content is required");
  return kind_ == ChatFormatKind::kDeepSeekV3 ? RenderDeepSeekV3(messages, add_generation_prompt)
                                               : RenderDsv3(messages, add_generation_prompt);
}

namespace {

std::string SystemPrompt(std::span<const ChatMessage> messages) {
  std::string out;
  bool first = true;
  for (const ChatMessage& m : messages) {
    if (m.role != "system") continue;
    if (!first) out += "\n\n";
    out += *m.content;
    first = false;
  }
  return out;
}

std::string CallText(const ToolCall& c) {
  return std::string(kCallBegin) + c.type + kSep + c.name + "\n```json\n" + c.arguments + "\n```" + kCallEnd;
}

}  // namespace

// Mirrors the V3 template statement by statement, quirks included.
std::string ChatFormat::RenderDeepSeekV3(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::string out = bos_ + SystemPrompt(messages);
  bool is_first = false, is_tool = false, is_output_first = true;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      is_tool = false;
      out.append(kUser).append(*m.content);
    } else if (m.role == "assistant" && !m.content) {
      is_tool = false;
      for (const ToolCall& c : m.tool_calls) {
        if (!is_first) {
          out.append(kAssistant).append(kCallsBegin).append(CallText(c));
          is_first = true;
        } else {
          out.append("\n").append(CallText(c)).append(kCallsEnd).append(eos_);
        }
      }
    } else if (m.role == "assistant") {
      out.append(is_tool ? kOutputsEnd : kAssistant).append(*m.content).append(eos_);
      is_tool = false;
    } else if (m.role == "tool") {
      is_tool = true;
      out.append(is_output_first ? kOutputsBegin : "\n").append(kOutputBegin).append(*m.content).append(kOutputEnd);
      is_output_first = false;
    }
  }
  if (is_tool) out += kOutputsEnd;
  if (add_generation_prompt && !is_tool) out += kAssistant;
  return out;
}

std::string ChatFormat::RenderDsv3(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::string out = bos_ + SystemPrompt(messages);
  bool in_tool = false;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      if (in_tool) out += kOutputsEnd;
      in_tool = false;
      out.append(kUser).append(*m.content);
    } else if (m.role == "assistant") {
      out += in_tool ? kOutputsEnd : kAssistant;
      in_tool = false;
      if (m.content) out += *m.content;
      if (!m.tool_calls.empty()) {
        out += kCallsBegin;
        for (size_t k = 0; k < m.tool_calls.size(); ++k) out.append(k ? "\n" : "").append(CallText(m.tool_calls[k]));
        out += kCallsEnd;
      }
      out += eos_;
    } else if (m.role == "tool") {
      out.append(in_tool ? "\n" : kOutputsBegin).append(kOutputBegin).append(*m.content).append(kOutputEnd);
      in_tool = true;
    }
  }
  if (in_tool) out += kOutputsEnd;
  else if (add_generation_prompt) out += kAssistant;
  return out;
}

namespace {
constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t PartialTagSuffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}
}  // namespace

void ReasoningParser::Emit(std::string_view text, std::string& reasoning, std::string& content) {
  bool& started = in_reasoning_ ? reasoning_started_ : content_started_;
  if (!started) {
    while (!text.empty() && (text.front() == '\n' || text.front() == '\r')) text.remove_prefix(1);
    if (text.empty()) return;
    started = true;
  }
  (in_reasoning_ ? reasoning : content).append(text);
}

void ReasoningParser::Add(std::string_view text, std::string& reasoning, std::string& content) {
  std::string buf = held_ + std::string(text);
  held_.clear();
  std::string_view rest = buf;
  while (!rest.empty()) {
    const std::string_view tag = in_reasoning_ ? kThinkClose : kThinkOpen;
    const size_t at = rest.find(tag);
    if (at == std::string_view::npos) {
      const size_t keep = PartialTagSuffix(rest, tag);
      Emit(rest.substr(0, rest.size() - keep), reasoning, content);
      held_ = std::string(rest.substr(rest.size() - keep));
      return;
    }
    Emit(rest.substr(0, at), reasoning, content);
    rest.remove_prefix(at + tag.size());
    in_reasoning_ = !in_reasoning_;
    if (in_reasoning_) reasoning_started_ = false;
    else content_started_ = false;
  }
}

void ReasoningParser::Flush(std::string& reasoning, std::string& content) {
  Emit(held_, reasoning, content);
  held_.clear();
}

}  // namespace dsv3
