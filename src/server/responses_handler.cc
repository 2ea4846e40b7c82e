// POST /v1/responses: the body is mapped onto a chat request
// (responses_api.h), then decoded, launched and awaited by the same code as
// chat (handler_common.h: prompt through the chat format, one scheduler
// submission, the SSE pump), and answered as a response object or, streamed,
// as its events (responses_output.h). A stream opens with response.created
// and response.in_progress, announces each output item as it starts, and
// ends with response.completed, response.incomplete (max_output_tokens) or,
// when the generation failed, an `error` event and response.failed.
#include <httplib.h>

#include <algorithm>
#include <ctime>

#include "server/handler_common.h"
#include "server/http_server.h"
#include "server/responses.h"
#include "server/responses_api.h"
#include "server/responses_output.h"

namespace dsv3::server {

using nlohmann::json;

namespace {

// The chat path names chat's prompt field; this endpoint's is `input`.
ApiError ForInput(ApiError e) {
  if (e.param == "messages") e.param = "input";
  return e;
}

// The tokens spent reasoning, estimated by re-encoding the reasoning text:
// the scheduler counts tokens, not which part of the reply each became. The
// model's own tokenisation (and its <think> markers) may differ by a few.
int64_t ReasoningTokens(const TextCodec& codec, const std::string& reasoning, int64_t output_tokens) {
  if (reasoning.empty()) return 0;
  auto ids = codec.EncodePrompt(reasoning), bos = codec.EncodePrompt("");  // BOS, when the tokenizer adds one
  if (!ids.ok() || !bos.ok()) return 0;
  return std::clamp<int64_t>(static_cast<int64_t>(ids->size() - bos->size()), 0, output_tokens);
}

bool Truncated(const ChoiceSet& choices) { return choices.choice(0).info().reason == FinishReason::kLength; }

// The response object of a generation that ended as asked.
json Finished(const ResponseInfo& info, const ResponseOutput& out, const ChoiceSet& choices, const TextCodec& codec) {
  const FinishInfo u = choices.Usage();
  json usage = ResponsesUsage(u, ReasoningTokens(codec, out.reasoning(), u.completion_tokens));
  if (!Truncated(choices)) return ResponseObject(info, "completed", &out, std::move(usage));
  return ResponseObject(info, "incomplete", &out, std::move(usage), nullptr, {{"reason", "max_output_tokens"}});
}

class EventStream : public SseStream {
 public:
  EventStream(ResponseInfo info, const TextCodec& codec) : info_(std::move(info)), codec_(codec), output_(info_.hex) {}

 protected:
  bool Produce(std::string* out) override {
    if (!started_) {
      json r = ResponseObject(info_, "in_progress", nullptr);
      events_.Emit("response.created", {{"response", r}});
      events_.Emit("response.in_progress", {{"response", std::move(r)}});
      started_ = true;
    }
    std::optional<ApiError> failed;
    bool finished = choices->Take(events_.empty() ? 0.25 : 0.0, [&](int i, Delta&& d, bool end) {
      output_.Add(d, &events_);
      if (end && !Completed(choices->choice(i).info())) failed = EndedError(choices->choice(i).info(), timeout_s);
    });
    if (failed) {
      Fail(*failed);
      finished = true;
    } else if (finished) {
      output_.Close(Truncated(*choices) ? "incomplete" : "completed", &events_);
      json r = Finished(info_, output_, *choices, codec_);
      const char* type = r["status"] == "completed" ? "response.completed" : "response.incomplete";
      events_.Emit(type, {{"response", std::move(r)}});
    }
    *out += events_.Take();
    return finished;
  }

 private:
  // The response cannot complete (timeout, shutdown, internal error): the
  // open item ends incomplete, then an `error` event (what the Vercel AI SDK
  // reports) and response.failed (what the openai SDK's helper ends on).
  void Fail(const ApiError& e) {
    choices->Cancel();
    output_.Close("incomplete", &events_);
    events_.Emit("error", {{"code", e.code}, {"message", e.message}, {"param", nullptr}});
    json usage = ResponsesUsage(choices->Usage(), 0);
    json error = {{"code", "server_error"}, {"message", e.message}};
    events_.Emit("response.failed",
                 {{"response", ResponseObject(info_, "failed", &output_, std::move(usage), std::move(error))}});
  }

  ResponseInfo info_;
  const TextCodec& codec_;
  ResponseOutput output_;
  ResponseEvents events_;
  bool started_ = false;
};

void RespondWhole(const httplib::Request& req, httplib::Response& res, ChoiceSet& choices, const ResponseInfo& info,
                  const TextCodec& codec, double timeout_s, bool log) {
  ResponseOutput out(info.hex);
  const std::optional<ApiError> failed = AwaitChoices(choices, timeout_s, [&](int, Delta&& d) { out.Add(d, nullptr); });
  if (failed) {
    SendError(res, *failed);
  } else {
    out.Close(Truncated(choices) ? "incomplete" : "completed", nullptr);
    res.set_content(Dump(Finished(info, out, choices, codec)), "application/json");
  }
  if (log) LogFinished(req.path, false, res.status < 0 ? 200 : res.status, choices);
}

}  // namespace

void HttpServer::HandleResponses(const httplib::Request& req, httplib::Response& res) {
  const double arrived = MonotonicSeconds();
  if (draining_) return SendError(res, {503, "the server is shutting down", "server_error", "", "server_shutdown"});
  json echo;
  const BodyParser parse = [&echo](const std::string& body, ApiError* e,
                                   const RequestDefaults& d) -> std::optional<ApiRequest> {
    std::optional<ResponsesRequest> p = ParseResponsesRequest(body, e, d);
    if (!p) return std::nullopt;
    echo = std::move(p->echo);
    return std::move(p->chat);
  };
  ApiError error;
  std::optional<ApiRequest> r;
  std::optional<EncodedPrompt> prompt = Decode(req, parse, r, &error);
  if (!prompt) return SendError(res, ForInput(error));
  auto active = std::make_shared<ActiveGuard>(active_);
  std::shared_ptr<ChoiceSet> choices = Launch(*r, std::move(*prompt), arrived, "input", &error);
  if (!choices) return SendError(res, ForInput(error));

  ResponseInfo info;
  NewResponsesId(&info);
  info.created_at = static_cast<int64_t>(std::time(nullptr));
  info.model = options_.model_name;
  info.echo = std::move(echo);
  if (!r->stream)
    return RespondWhole(req, res, *choices, info, codec_, options_.request_timeout_s, options_.log_requests);
  StartStream(req, res, std::make_shared<EventStream>(std::move(info), codec_), choices, active);
}

}  // namespace dsv3::server
