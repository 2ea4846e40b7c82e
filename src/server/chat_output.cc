// Reasoning / content / tool-call splitting; see chat_output.h.
#include "server/chat_output.h"

#include <algorithm>

namespace dsv3::server {

namespace {
constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>", kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

ToolCallOut ParseToolCall(std::string_view text) {
  ToolCallOut call;
  const size_t sep = text.find(kSep);
  if (sep == std::string_view::npos) {
    call.name = std::string(Trim(text));
    return call;
  }
  const std::string_view left = Trim(text.substr(0, sep));
  std::string_view right = text.substr(sep + kSep.size());
  if (left == "function") {  // V3: type, then "NAME\n```json\nARGS\n```"
    const size_t nl = right.find('\n');
    call.name = std::string(Trim(right.substr(0, nl)));
    right = nl == std::string_view::npos ? std::string_view() : right.substr(nl + 1);
    right = Trim(right);
    if (right.substr(0, 3) == "```") {
      const size_t line = right.find('\n');
      right = line == std::string_view::npos ? std::string_view() : right.substr(line + 1);
      const size_t fence = right.rfind("```");
      if (fence != std::string_view::npos) right = right.substr(0, fence);
    }
  } else {  // V3.1: "NAME<sep>ARGS"
    call.name = std::string(left);
  }
  call.arguments = std::string(Trim(right));
  return call;
}

ChatOutputParser::ChatOutputParser(bool starts_in_reasoning, std::string call_id_prefix)
    : mode_(starts_in_reasoning ? Mode::kReasoning : Mode::kContent), id_prefix_(std::move(call_id_prefix)) {}

const std::vector<std::string_view>& ChatOutputParser::Markers() const {
  // <think> opens reasoning only before any content (R1 starts its reply with it).
  static const std::vector<std::string_view> fresh = {kThinkOpen, kCallsBegin, kCallBegin};
  static const std::vector<std::string_view> content = {kCallsBegin, kCallBegin};
  static const std::vector<std::string_view> reasoning = {kThinkClose};
  static const std::vector<std::string_view> tools = {kCallBegin, kCallsEnd};
  static const std::vector<std::string_view> call = {kCallEnd, kCallsEnd};
  switch (mode_) {
    case Mode::kContent: return content_started_ || reasoning_started_ ? content : fresh;
    case Mode::kReasoning: return reasoning;
    case Mode::kTools: return tools;
    case Mode::kCall: return call;
  }
  return content;
}

void ChatOutputParser::Emit(std::string_view text, ChatPieces* out) {
  switch (mode_) {
    case Mode::kContent:
      if (!content_started_) {
        while (!text.empty() && text.front() == '\n') text.remove_prefix(1);
        content_started_ = !text.empty();
      }
      out->content.append(text);
      break;
    case Mode::kReasoning:
      if (!reasoning_started_) {
        while (!text.empty() && text.front() == '\n') text.remove_prefix(1);
        reasoning_started_ = !text.empty();
      }
      out->reasoning.append(text);
      break;
    case Mode::kTools: break;  // whitespace between calls
    case Mode::kCall: call_.append(text); break;
  }
}

void ChatOutputParser::OnMarker(std::string_view m, ChatPieces* out) {
  if (m == kThinkOpen) {
    mode_ = Mode::kReasoning;
  } else if (m == kThinkClose) {
    mode_ = Mode::kContent;
    content_started_ = false;  // drop the newlines after </think>
  } else if (m == kCallsBegin) {
    mode_ = Mode::kTools;
  } else if (m == kCallBegin) {
    mode_ = Mode::kCall;
    call_.clear();
  } else if (m == kCallEnd || (m == kCallsEnd && mode_ == Mode::kCall)) {
    ToolCallOut c = ParseToolCall(call_);
    c.id = id_prefix_ + std::to_string(calls_++);
    out->tool_calls.push_back(std::move(c));
    call_.clear();
    mode_ = m == kCallEnd ? Mode::kTools : Mode::kContent;
  } else if (m == kCallsEnd) {
    mode_ = Mode::kContent;
  }
}

void ChatOutputParser::Add(std::string_view text, ChatPieces* out) {
  held_.append(text);
  std::string_view rest = held_;
  for (;;) {
    size_t at = std::string_view::npos;
    std::string_view found;
    for (std::string_view m : Markers()) {
      const size_t p = rest.find(m);
      // <think> counts only as the very start of the reply (after newlines).
      if (m == kThinkOpen && p != std::string_view::npos &&
          rest.substr(0, p).find_first_not_of("\n") != std::string_view::npos)
        continue;
      if (p < at) at = p, found = m;
    }
    if (at == std::string_view::npos) break;
    Emit(rest.substr(0, at), out);
    rest.remove_prefix(at + found.size());
    OnMarker(found, out);
  }
  // Keep a tail that could still grow into a marker of the current mode.
  size_t hold = 0;
  for (std::string_view m : Markers())
    for (size_t k = std::min(m.size() - 1, rest.size()); k > hold; --k)
      if (rest.substr(rest.size() - k) == m.substr(0, k)) {
        hold = k;
        break;
      }
  Emit(rest.substr(0, rest.size() - hold), out);
  held_ = std::string(rest.substr(rest.size() - hold));
}

void ChatOutputParser::Flush(ChatPieces* out) {
  Emit(held_, out);
  held_.clear();
  if (mode_ == Mode::kCall && !call_.empty()) {
    // Cut off inside a call (max_tokens): show the raw text rather than lose it.
    mode_ = Mode::kContent;
    content_started_ = true;
    out->content += std::string(kCallBegin) + call_;
    call_.clear();
  }
}

}  // namespace dsv3::server
