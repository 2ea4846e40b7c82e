// Responses API output items, stream events and response objects; see
// responses_output.h.
#include "server/responses_output.h"

#include <ctime>

#include "server/responses.h"

namespace dsv3::server {

using nlohmann::json;

void ResponseEvents::Emit(const char* type, json payload) {
  payload["type"] = type;
  payload["sequence_number"] = next_++;
  out_.append("event: ").append(type).append("\ndata: ").append(Dump(payload)).append("\n\n");
}

std::string ResponseEvents::Take() {
  std::string out;
  out.swap(out_);
  return out;
}

std::string ResponseOutput::NewId(const char* prefix) {
  return std::string(prefix) + hex_ + "_" + std::to_string(next_id_++);
}

json ResponseOutput::Where() const {
  return json{{"item_id", open_id_}, {"output_index", items_.size()}};
}

namespace {

json TextPart(const std::string& text) {
  return json{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}};
}
json SummaryPart(const std::string& text) { return json{{"type", "summary_text"}, {"text", text}}; }

json MessageItem(const std::string& id, const char* status, json content) {
  return json{{"type", "message"}, {"id", id}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
}
json ReasoningItem(const std::string& id, const char* status, json summary) {
  return json{{"type", "reasoning"}, {"id", id}, {"status", status}, {"summary", std::move(summary)}};
}

}  // namespace

// An item opens with its announcement (and its one content or summary part),
// takes deltas, and is closed before any other item starts, so its
// output_index is the number of items closed before it.
void ResponseOutput::Open(Kind kind, ResponseEvents* ev) {
  if (open_ == kind) return;
  Close("completed", ev);
  open_ = kind, open_id_ = NewId(kind == Kind::kMessage ? "msg_" : "rs_"), open_text_.clear();
  if (!ev) return;
  const json item = kind == Kind::kMessage ? MessageItem(open_id_, "in_progress", json::array())
                                           : ReasoningItem(open_id_, "in_progress", json::array());
  ev->Emit("response.output_item.added", {{"output_index", items_.size()}, {"item", item}});
  json part = Where();
  if (kind == Kind::kMessage) {
    part["content_index"] = 0, part["part"] = TextPart("");
    ev->Emit("response.content_part.added", std::move(part));
  } else {
    part["summary_index"] = 0, part["part"] = SummaryPart("");
    ev->Emit("response.reasoning_summary_part.added", std::move(part));
  }
}

void ResponseOutput::Close(const char* status, ResponseEvents* ev) {
  if (open_ == Kind::kNone) return;
  const bool message = open_ == Kind::kMessage;
  json item = message ? MessageItem(open_id_, status, json::array({TextPart(open_text_)}))
                      : ReasoningItem(open_id_, status, json::array({SummaryPart(open_text_)}));
  if (ev) {
    json at = Where();
    json done = at, part = at;
    if (message) {
      done["content_index"] = 0, done["text"] = open_text_, done["logprobs"] = json::array();
      ev->Emit("response.output_text.done", std::move(done));
      part["content_index"] = 0, part["part"] = TextPart(open_text_);
      ev->Emit("response.content_part.done", std::move(part));
    } else {
      done["summary_index"] = 0, done["text"] = open_text_;
      ev->Emit("response.reasoning_summary_text.done", std::move(done));
      part["summary_index"] = 0, part["part"] = SummaryPart(open_text_);
      ev->Emit("response.reasoning_summary_part.done", std::move(part));
    }
    ev->Emit("response.output_item.done", {{"output_index", items_.size()}, {"item", item}});
  }
  items_.push_back(std::move(item));
  open_ = Kind::kNone, open_text_.clear();
}

// A tool call arrives whole (chat's parser emits complete calls), so its
// item is announced, given its arguments in one delta and closed at once.
void ResponseOutput::AddCall(const ToolCallOut& call, ResponseEvents* ev) {
  Close("completed", ev);
  const std::string id = NewId("fc_");
  json item = {{"type", "function_call"}, {"id", id},        {"call_id", call.id},
               {"name", call.name},       {"arguments", ""}, {"status", "in_progress"}};
  if (ev) {
    const size_t index = items_.size();
    ev->Emit("response.output_item.added", {{"output_index", index}, {"item", item}});
    ev->Emit("response.function_call_arguments.delta",
             {{"item_id", id}, {"output_index", index}, {"delta", call.arguments}});
    ev->Emit("response.function_call_arguments.done",
             {{"item_id", id}, {"output_index", index}, {"name", call.name}, {"arguments", call.arguments}});
  }
  item["arguments"] = call.arguments, item["status"] = "completed";
  if (ev) ev->Emit("response.output_item.done", {{"output_index", items_.size()}, {"item", item}});
  items_.push_back(std::move(item));
}

// Within one delta reasoning comes first (it only opens a reply) and calls
// last (text after a call arrives in a later delta, and gets its own item).
void ResponseOutput::Add(const Delta& d, ResponseEvents* ev) {
  if (!d.reasoning.empty()) {
    Open(Kind::kReasoning, ev);
    open_text_ += d.reasoning, reasoning_ += d.reasoning;
    if (ev) {
      json delta = Where();
      delta["summary_index"] = 0, delta["delta"] = d.reasoning;
      ev->Emit("response.reasoning_summary_text.delta", std::move(delta));
    }
  }
  if (!d.content.empty()) {
    Open(Kind::kMessage, ev);
    open_text_ += d.content, text_ += d.content;
    if (ev) {
      json delta = Where();
      delta["content_index"] = 0, delta["delta"] = d.content, delta["logprobs"] = json::array();
      ev->Emit("response.output_text.delta", std::move(delta));
    }
  }
  for (const ToolCallOut& call : d.tool_calls) AddCall(call, ev);
}

void NewResponsesId(ResponseInfo* info) {
  // Chat's ids are unique per process and unguessable across restarts; the
  // same hex serves here ("chatcmpl-<hex>" -> "resp_<hex>").
  const std::string chat = NewResponseId(Endpoint::kChat);
  info->hex = chat.substr(chat.find('-') + 1);
  info->id = "resp_" + info->hex;
}

json ResponsesUsage(const FinishInfo& u, int64_t reasoning_tokens) {
  return json{{"input_tokens", u.prompt_tokens},
              {"input_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}},
              {"output_tokens", u.completion_tokens},
              {"output_tokens_details", {{"reasoning_tokens", reasoning_tokens}}},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json ResponseObject(const ResponseInfo& info, const std::string& status, const ResponseOutput* output, json usage,
                    json error, json incomplete_details) {
  json r = info.echo;
  r["id"] = info.id;
  r["object"] = "response";
  r["created_at"] = info.created_at;
  r["status"] = status;
  r["completed_at"] = status == "completed" ? json(static_cast<int64_t>(std::time(nullptr))) : json(nullptr);
  r["model"] = info.model;
  r["output"] = output ? output->items() : json::array();
  // The SDKs compute output_text themselves; curl users get it too.
  r["output_text"] = output ? output->text() : std::string();
  r["usage"] = std::move(usage);
  r["error"] = std::move(error);
  r["incomplete_details"] = std::move(incomplete_details);
  return r;
}

}  // namespace dsv3::server
