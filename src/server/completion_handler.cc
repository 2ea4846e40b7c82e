// POST /v1/completions and /v1/chat/completions: validate, build the prompt
// ids, submit the request's n choices to the scheduler as one group (the
// prompt is prefilled once), then either wait for the whole answer or stream
// it as Server-Sent Events, each chunk carrying one choice's new output. A
// stream's writer notices a client that went away (a failed write, or a
// closed socket while waiting for tokens) and cancels the sequences, which
// frees their cache slots before the next forward. The pieces every
// generation endpoint shares (handler_common.h: the SSE pump, the wait for a
// whole answer, Decode and Launch) are here too; /v1/responses uses them.
#include <httplib.h>
#include <malloc.h>

#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "server/handler_common.h"
#include "server/http_server.h"
#include "server/responses.h"

namespace dsv3::server {

namespace {

std::string OpenAiFinishReason(const Generation& g) {
  switch (g.info().reason) {
    case FinishReason::kStop: return g.used_tools() ? "tool_calls" : "stop";
    case FinishReason::kLength: return "length";
    default: return "";
  }
}

}  // namespace

ApiError EndedError(const FinishInfo& info, double timeout_s) {
  ApiError e;
  e.type = "server_error";
  if (info.reason == FinishReason::kTimeout) {
    e.status = 503, e.code = "timeout";
    e.message = "the request ran longer than the server's request timeout (" + std::to_string(int(timeout_s)) + " s)";
  } else if (info.reason == FinishReason::kCancelled) {
    e.status = 503, e.code = "server_shutdown";
    e.message = "the request was cancelled because the server is shutting down";
  } else {
    e.status = 500, e.code = "internal_error";
    e.message = "generation failed: " + info.error;
  }
  return e;
}

namespace {

// Moves the chat messages out of `r` (they are not needed once encoded).
std::optional<EncodedPrompt> BuildPrompt(ApiRequest& r, const TextCodec& codec, ApiError* error) {
  EncodedPrompt p;
  if (r.endpoint == Endpoint::kChat) {
    auto chat = codec.EncodeChat(std::move(r.messages), r.tools);
    r.tools = nullptr;
    if (!chat.ok()) return *error = BadRequest(chat.status().message(), "messages"), std::nullopt;
    p.ids = std::move(chat->ids);
    p.starts_in_reasoning = chat->starts_in_reasoning;
  } else if (r.prompt_ids) {
    p.ids = *r.prompt_ids;
  } else {
    auto ids = codec.EncodePrompt(r.prompt_text);
    if (!ids.ok()) return *error = BadRequest(ids.status().message(), "prompt"), std::nullopt;
    p.ids = std::move(*ids);
  }
  if (p.ids.empty()) return *error = BadRequest("the prompt encodes to no tokens", "prompt"), std::nullopt;
  if (!r.stop.empty() && !codec.has_tokenizer())
    return *error = BadRequest("stop strings need a tokenizer, and this model has none: use stop_token_ids", "stop"),
           std::nullopt;
  return p;
}

// OpenAI's wording, so clients that parse it keep working; `field` is the
// request field that holds the prompt (prompt, messages, input).
ApiError ContextError(const std::string& field, int64_t context, int64_t prompt, int64_t max_tokens) {
  return BadRequest("This model's maximum context length is " + std::to_string(context) +
                        " tokens. However, you requested " + std::to_string(prompt + max_tokens) + " tokens (" +
                        std::to_string(prompt) + " in the " + field + ", " + std::to_string(max_tokens) +
                        " in the completion). Please reduce the length of the " + field + " or completion.",
                    field, "context_length_exceeded");
}

}  // namespace

void LogFinished(const std::string& path, bool stream, int status, const ChoiceSet& choices) {
  const FinishInfo u = choices.Usage();
  std::string finish;
  for (int i = 0; i < choices.size(); ++i)
    finish += std::string(i ? "," : "") + FinishReasonName(choices.choice(i).info().reason);
  const double now = MonotonicSeconds(), first = choices.group().first_token_time();
  const double ttft = first > 0 ? first - choices.group().arrived() : 0, decode = first > 0 ? now - first : 0;
  const int64_t per_choice = u.completion_tokens / choices.size();  // the rate one stream saw
  std::fprintf(stderr, "POST %s %d%s%s prompt=%lld (cached %lld) completion=%lld finish=%s ttft=%.3fs %.1f tok/s\n",
               path.c_str(), status, stream ? " stream" : "",
               choices.size() > 1 ? (" n=" + std::to_string(choices.size())).c_str() : "",
               static_cast<long long>(u.prompt_tokens), static_cast<long long>(u.cached_prompt_tokens),
               static_cast<long long>(u.completion_tokens), finish.c_str(), ttft,
               per_choice > 1 ? (per_choice - 1) / decode : 0.0);
}

bool SseStream::Step(httplib::DataSink& sink) {
  std::string out;
  const bool finished = Produce(&out);
  const double now = MonotonicSeconds();
  if (out.empty()) {
    if (!sink.is_writable()) return Abort();  // the client closed the connection
    if (now - last_write < 15) return true;
    out = ": keep-alive\n\n";  // an SSE comment: proxies and clients see the stream is alive
  }
  if (!sink.write(out.data(), out.size())) return Abort();
  last_write = now;
  if (finished) {
    sink.done();
    if (log) LogWhenEnded(200);
  }
  return true;
}

// The client went away: cancel, and log once the scheduler has let go.
bool SseStream::Abort() {
  choices->Cancel();
  if (log) LogWhenEnded(499);  // nginx's "client closed request"
  return false;
}

// Cancelled choices end within a step; the log line waits (a little) for them.
void SseStream::LogWhenEnded(int status) {
  for (int i = 0; i < 20 && !choices->Take(0.1, [](int, Delta&&, bool) {}); ++i) {
  }
  LogFinished(path, true, status, *choices);
}

std::optional<ApiError> AwaitChoices(ChoiceSet& choices, double timeout_s,
                                     const std::function<void(int, Delta&&)>& on_delta) {
  std::optional<ApiError> failed;
  while (!choices.Take(1.0, [&](int i, Delta&& d, bool end) {
    on_delta(i, std::move(d));
    if (end && !failed && !Completed(choices.choice(i).info())) {
      failed = EndedError(choices.choice(i).info(), timeout_s);
      choices.Cancel();
    }
  })) {
  }
  return failed;
}

namespace {

// Chat and completions chunks: each carries one choice's new output; a
// finish chunk per choice, the usage chunk when asked for, then [DONE].
class ChunkStream : public SseStream {
 public:
  ResponseMeta meta;
  bool include_usage = false;
  std::vector<int> tool_calls;  // per choice: tool calls streamed so far (their `index`)

 protected:
  bool Produce(std::string* out) override {
    if (!started_ && meta.endpoint == Endpoint::kChat)  // the role chunks go out at once
      for (int i = 0; i < choices->size(); ++i)
        *out += SseData(StreamChunk(meta, i, Delta(), "", true, include_usage, 0));
    started_ = true;
    std::optional<ApiError> failed;
    bool finished = choices->Take(out->empty() ? 0.25 : 0.0, [&](int i, Delta&& d, bool end) {
      if (!d.empty()) *out += SseData(StreamChunk(meta, i, d, "", false, include_usage, tool_calls[i]));
      tool_calls[i] += static_cast<int>(d.tool_calls.size());
      if (end && !failed) *out += End(i, &failed);
    });
    if (failed) {
      // One choice failed (timeout, shutdown, internal error): the response
      // cannot be completed, so the stream ends now with the error.
      choices->Cancel();
      *out += SseData(failed->ToJson()) + "data: [DONE]\n\n";
      finished = true;
    } else if (finished) {
      if (include_usage) *out += SseData(UsageChunk(meta, choices->Usage()));
      *out += "data: [DONE]\n\n";
    }
    return finished;
  }

 private:
  // Choice i's finish chunk, or (it did not complete) its error in *failed.
  std::string End(int i, std::optional<ApiError>* failed) {
    const std::string reason = OpenAiFinishReason(choices->choice(i));
    if (reason.empty()) return *failed = EndedError(choices->choice(i).info(), timeout_s), std::string();
    return SseData(StreamChunk(meta, i, Delta(), reason, false, include_usage, tool_calls[i]));
  }

  bool started_ = false;
};

// The whole answer once every choice has ended; the first choice that did
// not complete makes it an error.
void RespondWhole(const httplib::Request& req, httplib::Response& res, ChoiceSet& choices, const ResponseMeta& meta,
                  double timeout_s, bool log) {
  std::vector<ChoiceOut> out(choices.size());
  const std::optional<ApiError> failed =
      AwaitChoices(choices, timeout_s, [&](int i, Delta&& d) { out[i].all.Append(std::move(d)); });
  if (failed) {
    SendError(res, *failed);
  } else {
    for (int i = 0; i < choices.size(); ++i) out[i].finish_reason = OpenAiFinishReason(choices.choice(i));
    res.set_content(Dump(FullResponse(meta, out, choices.Usage())), "application/json");
  }
  if (log) LogFinished(req.path, false, res.status < 0 ? 200 : res.status, choices);
}

}  // namespace

void HttpServer::StartStream(const httplib::Request& req, httplib::Response& res, std::shared_ptr<SseStream> stream,
                             std::shared_ptr<ChoiceSet> choices, std::shared_ptr<ActiveGuard> active) {
  stream->choices = std::move(choices), stream->active = std::move(active);
  stream->timeout_s = options_.request_timeout_s, stream->log = options_.log_requests, stream->path = req.path;
  stream->last_write = MonotonicSeconds();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [stream](size_t, httplib::DataSink& sink) { return stream->Step(sink); },
      [stream](bool) { stream->Cancel(); });  // runs however the response ended; a no-op once finished
}

std::optional<EncodedPrompt> HttpServer::Decode(const httplib::Request& req, const BodyParser& parse,
                                                std::optional<ApiRequest>& r, ApiError* error) {
  // A large body's JSON tree takes about 12x its size and parsing it keeps a
  // core busy; a burst of them decoded at once would multiply the memory peak
  // and starve /health of CPU, so they take turns (small ones never wait).
  // Each thread frees into its own malloc arena, so the tree's pages are
  // trimmed before the next large body is decoded, on whichever thread.
  const bool large = req.body.size() >= kLargeBodyBytes;
  if (!large) return DecodeBody(req, parse, r, error);
  large_decodes_.acquire();
  std::optional<EncodedPrompt> prompt = DecodeBody(req, parse, r, error);
  malloc_trim(0);
  large_decodes_.release();
  return prompt;
}

std::optional<EncodedPrompt> HttpServer::DecodeBody(const httplib::Request& req, const BodyParser& parse,
                                                    std::optional<ApiRequest>& r, ApiError* error) {
  const RequestDefaults defaults{options_.sampling_defaults, options_.max_choices,
                                 scheduler_.model().config().vocab_size};
  r = parse(req.body, error, defaults);
  // The body is not needed once parsed: free it now rather than when the
  // response (perhaps a long stream) is done. httplib's Request is a local
  // of its request loop, so the const_cast touches no const object.
  std::string().swap(const_cast<httplib::Request&>(req).body);
  if (!r) return std::nullopt;
  if (!r->model.empty() && r->model != options_.model_name)
    return *error = {404, "the model '" + r->model + "' does not exist (this server serves '" + options_.model_name +
                              "')",
                     "invalid_request_error", "model", "model_not_found"},
           std::nullopt;
  return BuildPrompt(*r, codec_, error);
}

std::shared_ptr<ChoiceSet> HttpServer::Launch(const ApiRequest& r, EncodedPrompt&& prompt, double arrived,
                                              const std::string& prompt_field, ApiError* error) {
  const int64_t context = scheduler_.options().context, p = static_cast<int64_t>(prompt.ids.size());
  const int64_t max_tokens = r.max_tokens > 0 ? r.max_tokens : std::min(options_.default_max_tokens, context - p);
  if (max_tokens < 1 || p + max_tokens > context)
    return *error = ContextError(prompt_field, context, p, max_tokens), nullptr;
  auto choices = std::make_shared<ChoiceSet>(codec_, r, prompt.starts_in_reasoning, metrics_, arrived);
  GenerationRequest g;
  g.prompt = std::move(prompt.ids);
  g.max_tokens = max_tokens;
  g.deadline = options_.request_timeout_s > 0 ? arrived + options_.request_timeout_s : 0;
  g.sampling = r.sampling;
  g.stop_at_eos = !r.ignore_eos;
  g.stop_token_ids = r.stop_token_ids;
  if (!r.ignore_eos)
    for (int32_t t : codec_.StopTokens()) g.stop_token_ids.push_back(t);
  if (r.constraint.active()) {
    std::vector<int32_t> ends = g.stop_token_ids;  // what ends generation ends the document
    if (g.stop_at_eos)
      for (int64_t t : scheduler_.model().config().eos_token_ids) ends.push_back(static_cast<int32_t>(t));
    auto grammar = grammars_.Get(r.constraint, prompt.starts_in_reasoning, ends);
    if (!grammar.ok()) {
      const bool tools = r.constraint.tool_mode == OutputConstraint::Tools::kRequired ||
                         grammar.status().message().rfind("tools:", 0) == 0;
      return *error = BadRequest(grammar.status().message(), tools ? "tools" : r.constraint.param), nullptr;
    }
    g.grammar = std::move(*grammar);
  }
  std::vector<std::shared_ptr<SequenceHandle>> handles;
  SubmitResult sub = scheduler_.SubmitGroup(choices->MakeRequests(g), &handles);
  if (sub.code == SubmitCode::kInvalid) return *error = BadRequest(sub.message), nullptr;
  if (sub.code == SubmitCode::kQueueFull)
    return *error = {429, sub.message, "rate_limit_error", "", "queue_full"}, nullptr;
  if (sub.code == SubmitCode::kShuttingDown)
    return *error = {503, sub.message, "server_error", "", "server_shutdown"}, nullptr;
  choices->set_handles(handles);
  return choices;
}

void HttpServer::HandleGeneration(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const double arrived = MonotonicSeconds();
  if (draining_) return SendError(res, {503, "the server is shutting down", "server_error", "", "server_shutdown"});
  ApiError error;
  std::optional<ApiRequest> r;
  const BodyParser parse = [endpoint](const std::string& body, ApiError* e, const RequestDefaults& d) {
    return ParseRequest(body, endpoint, e, d);
  };
  std::optional<EncodedPrompt> prompt = Decode(req, parse, r, &error);
  if (!prompt) return SendError(res, error);
  auto active = std::make_shared<ActiveGuard>(active_);
  const std::string field = endpoint == Endpoint::kChat ? "messages" : "prompt";
  std::shared_ptr<ChoiceSet> choices = Launch(*r, std::move(*prompt), arrived, field, &error);
  if (!choices) return SendError(res, error);

  ResponseMeta meta{endpoint, NewResponseId(endpoint), static_cast<int64_t>(std::time(nullptr)), options_.model_name,
                    &codec_, r->logprobs >= 0};
  if (!r->stream) return RespondWhole(req, res, *choices, meta, options_.request_timeout_s, options_.log_requests);
  auto stream = std::make_shared<ChunkStream>();
  stream->meta = meta, stream->include_usage = r->include_usage;
  stream->tool_calls.assign(choices->size(), 0);
  StartStream(req, res, stream, choices, active);
}

}  // namespace dsv3::server
