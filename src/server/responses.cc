// JSON for completions and chat completions; see responses.h.
#include "server/responses.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace dsv3::server {

using nlohmann::json;

std::string NewResponseId(Endpoint endpoint) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s%016llx%08llx", endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-",
                static_cast<unsigned long long>(salt), static_cast<unsigned long long>(++counter));
  return buf;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string SseData(const json& j) { return "data: " + Dump(j) + "\n\n"; }

json UsageJson(const FinishInfo& info) {
  return json{{"prompt_tokens", info.prompt_tokens},
              {"completion_tokens", info.completion_tokens},
              {"total_tokens", info.prompt_tokens + info.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", info.cached_prompt_tokens}}}};
}

namespace {

json BytesArray(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}

// Chat format: {"content": [{token, logprob, bytes, top_logprobs: [...]}]}.
json ChatLogprobs(const ResponseMeta& m, const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const auto& e : entries) {
    json top = json::array();
    for (const auto& t : e.top)
      top.push_back({{"token", m.codec->TokenString(t.token)},
                     {"logprob", t.logprob},
                     {"bytes", BytesArray(m.codec->TokenBytes(t.token))}});
    content.push_back({{"token", m.codec->TokenString(e.token)},
                       {"logprob", e.logprob},
                       {"bytes", BytesArray(m.codec->TokenBytes(e.token))},
                       {"top_logprobs", top}});
  }
  return json{{"content", content}};
}

// Legacy completions format: parallel arrays plus {token: logprob} maps.
json CompletionLogprobs(const ResponseMeta& m, const std::vector<LogprobEntry>& entries) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& e : entries) {
    tokens.push_back(m.codec->TokenString(e.token));
    lps.push_back(e.logprob);
    json top = json::object();
    for (const auto& t : e.top) top[m.codec->TokenString(t.token)] = t.logprob;
    tops.push_back(top);
    offsets.push_back(e.text_offset);
  }
  return json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json LogprobsOrNull(const ResponseMeta& m, const std::vector<LogprobEntry>& entries) {
  if (!m.logprobs || entries.empty()) return nullptr;
  return m.endpoint == Endpoint::kChat ? ChatLogprobs(m, entries) : CompletionLogprobs(m, entries);
}

json ToolCallsJson(const std::vector<ToolCallOut>& calls, bool streamed, int first_index) {
  json a = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id},
              {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (streamed) c["index"] = first_index + static_cast<int>(i);
    a.push_back(c);
  }
  return a;
}

json FinishOrNull(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

}  // namespace

json FullResponse(const ResponseMeta& m, const std::vector<ChoiceOut>& choices, const FinishInfo& usage) {
  json r = {{"id", m.id}, {"created", m.created}, {"model", m.model}};
  r["object"] = m.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion";
  json out = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const Delta& all = choices[i].all;
    json choice = {{"index", i}, {"logprobs", LogprobsOrNull(m, all.logprobs)},
                   {"finish_reason", choices[i].finish_reason}};
    if (m.endpoint == Endpoint::kChat) {
      json msg = {{"role", "assistant"}, {"content", all.content}};
      if (!all.reasoning.empty()) msg["reasoning_content"] = all.reasoning;
      if (!all.tool_calls.empty()) {
        msg["tool_calls"] = ToolCallsJson(all.tool_calls, false, 0);
        if (all.content.empty()) msg["content"] = nullptr;
      }
      choice["message"] = msg;
    } else {
      choice["text"] = all.content;
    }
    out.push_back(std::move(choice));
  }
  r["choices"] = std::move(out);
  r["usage"] = UsageJson(usage);
  return r;
}

json StreamChunk(const ResponseMeta& m, int index, const Delta& delta, const std::string& finish_reason, bool first,
                 bool usage_null, int tool_index) {
  json choice = {{"index", index}, {"logprobs", LogprobsOrNull(m, delta.logprobs)},
                 {"finish_reason", FinishOrNull(finish_reason)}};
  json r = {{"id", m.id}, {"created", m.created}, {"model", m.model}};
  if (m.endpoint == Endpoint::kChat) {
    json d = json::object();
    if (first) d["role"] = "assistant";
    if (!delta.content.empty() || (first && delta.reasoning.empty() && delta.tool_calls.empty()))
      d["content"] = delta.content;
    if (!delta.reasoning.empty()) d["reasoning_content"] = delta.reasoning;
    if (!delta.tool_calls.empty()) {
      d["tool_calls"] = ToolCallsJson(delta.tool_calls, true, tool_index);
    }
    choice["delta"] = d;
    r["object"] = "chat.completion.chunk";
  } else {
    choice["text"] = delta.content;
    r["object"] = "text_completion";
  }
  r["choices"] = json::array({choice});
  if (usage_null) r["usage"] = nullptr;
  return r;
}

json UsageChunk(const ResponseMeta& m, const FinishInfo& info) {
  return json{{"id", m.id},
              {"object", m.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
              {"created", m.created},
              {"model", m.model},
              {"choices", json::array()},
              {"usage", UsageJson(info)}};
}

}  // namespace dsv3::server
