// OpenAI response bodies: completions (object "text_completion") and chat
// completions ("chat.completion", streamed as "chat.completion.chunk"), with
// usage (prompt_tokens_details.cached_tokens included), logprobs in each
// endpoint's format, and Server-Sent Events framing. A request's n choices
// are the response's `choices` in index order; streamed, each chunk carries
// one choice with its `index`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api.h"
#include "server/generation.h"
#include "server/text_codec.h"

namespace dsv3::server {

struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;      // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  const TextCodec* codec = nullptr;
  bool logprobs = false;
};

// A new response id with the endpoint's prefix.
std::string NewResponseId(Endpoint endpoint);

nlohmann::json UsageJson(const FinishInfo& info);

// One choice of a whole response: all it generated and why it ended.
struct ChoiceOut {
  Delta all;
  std::string finish_reason;
};

// The whole (non-streamed) response; `usage` as ChoiceSet::Usage gives it.
nlohmann::json FullResponse(const ResponseMeta& m, const std::vector<ChoiceOut>& choices, const FinishInfo& usage);

// One streamed chunk of choice `index`: `delta` (may be empty), the finish
// reason on the choice's last one ("" for none), `first` adds the assistant
// role (chat). `usage_null` adds "usage": null (stream_options.include_usage);
// `tool_index` is how many tool calls earlier chunks of this choice carried.
nlohmann::json StreamChunk(const ResponseMeta& m, int index, const Delta& delta, const std::string& finish_reason,
                           bool first, bool usage_null, int tool_index);
// The usage-only final chunk ("choices": []).
nlohmann::json UsageChunk(const ResponseMeta& m, const FinishInfo& info);

// "data: <json>\n\n" (invalid UTF-8 replaced, never thrown on).
std::string SseData(const nlohmann::json& j);
std::string Dump(const nlohmann::json& j);

}  // namespace dsv3::server
