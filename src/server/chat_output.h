// Splits a chat completion's streamed text into what OpenAI clients expect:
// `reasoning_content` (R1-style text between <think> and </think>),
// `content`, and `tool_calls` written with DeepSeek's tool-call tokens:
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//   ```json
//   {...}
//   ```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
// (V3; V3.1's NAME<｜tool▁sep｜>ARGS form is accepted too). Markers may be
// split across pieces; a possible partial marker is held back until the next
// piece decides it. Leading newlines of the reasoning and of the content
// after it are dropped (R1 writes "<think>\n...\n</think>\n\n").
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dsv3::server {

struct ToolCallOut {
  std::string id, name, arguments;  // arguments: JSON text as the model wrote it
};

struct ChatPieces {
  std::string content, reasoning;
  std::vector<ToolCallOut> tool_calls;
};

class ChatOutputParser {
 public:
  explicit ChatOutputParser(bool starts_in_reasoning, std::string call_id_prefix = "call_");
  void Add(std::string_view text, ChatPieces* out);
  void Flush(ChatPieces* out);
  int tool_calls() const { return calls_; }

 private:
  enum class Mode { kContent, kReasoning, kTools, kCall };
  void Emit(std::string_view text, ChatPieces* out);
  const std::vector<std::string_view>& Markers() const;
  void OnMarker(std::string_view marker, ChatPieces* out);

  Mode mode_;
  std::string held_, call_;
  std::string id_prefix_;
  bool content_started_ = false, reasoning_started_ = false;
  int calls_ = 0;
};

// One call's text between <｜tool▁call▁begin｜> and <｜tool▁call▁end｜>.
ToolCallOut ParseToolCall(std::string_view text);

}  // namespace dsv3::server
