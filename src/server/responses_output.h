// POST /v1/responses, the output side: a generation's pieces (reasoning,
// text, tool calls, as chat's output parser splits them) become the
// Responses API's `output` items in the order they were generated, a
// `reasoning` item (the <think> text as one summary part), `message` items
// ({type: "output_text"} content) and `function_call` items. Streamed, the
// same builder writes the events announcing them (output_item.added,
// content_part.added, output_text.delta, ... output_item.done), numbered by
// sequence_number, in the shapes the openai SDK's types and the Vercel AI
// SDK's schemas declare; a whole response is built by the same code with no
// events, so both agree. Also the response object and its usage.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/request.h"
#include "server/generation.h"

namespace dsv3::server {

// Server-Sent Events of one Responses stream: `event: TYPE\ndata: JSON\n\n`,
// each payload carrying its `type` and `sequence_number`.
class ResponseEvents {
 public:
  void Emit(const char* type, nlohmann::json payload);
  bool empty() const { return out_.empty(); }
  std::string Take();  // the events since the last Take

 private:
  int64_t next_ = 0;
  std::string out_;
};

// The output items of one response, built from a choice's deltas in order;
// each call may write the events for it (`ev` null: none).
class ResponseOutput {
 public:
  // `id_hex` makes the item ids (msg_<hex>_<n>, rs_..., fc_...) unique.
  explicit ResponseOutput(std::string id_hex) : hex_(std::move(id_hex)) {}
  void Add(const Delta& d, ResponseEvents* ev);
  // Ends the open item: `status` "completed", or "incomplete" when the
  // output was cut off (max_output_tokens, an error).
  void Close(const char* status, ResponseEvents* ev);

  const nlohmann::json& items() const { return items_; }
  const std::string& text() const { return text_; }            // output_text: every message's text
  const std::string& reasoning() const { return reasoning_; }  // all reasoning text

 private:
  enum class Kind { kNone, kReasoning, kMessage };
  void Open(Kind kind, ResponseEvents* ev);
  void AddCall(const ToolCallOut& call, ResponseEvents* ev);
  std::string NewId(const char* prefix);
  nlohmann::json Where() const;  // item_id and output_index of the open item

  std::string hex_;
  int next_id_ = 0;
  nlohmann::json items_ = nlohmann::json::array();  // closed items
  Kind open_ = Kind::kNone;
  std::string open_id_, open_text_;  // the open item's id and text so far
  std::string text_, reasoning_;
};

// The request-level facts every response object of a request repeats.
struct ResponseInfo {
  std::string id;          // resp_<hex>
  std::string hex;         // the id's unique part, for item ids
  int64_t created_at = 0;  // unix seconds
  std::string model;
  nlohmann::json echo;  // ResponsesRequest::echo
};

// A new response id and its hex part.
void NewResponsesId(ResponseInfo* info);

// OpenAI's usage object. `reasoning_tokens` is an estimate (responses_handler.cc).
nlohmann::json ResponsesUsage(const FinishInfo& usage, int64_t reasoning_tokens);

// The response object: `status` in_progress / completed / incomplete /
// failed; `output` null means no output yet (an empty list); `usage`,
// `error` and `incomplete_details` null unless given.
nlohmann::json ResponseObject(const ResponseInfo& info, const std::string& status, const ResponseOutput* output,
                              nlohmann::json usage = nullptr, nlohmann::json error = nullptr,
                              nlohmann::json incomplete_details = nullptr);

}  // namespace dsv3::server
