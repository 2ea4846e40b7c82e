// The scheduler-thread output pipeline and the HTTP-thread hand-off; see generation.h.
#include "server/generation.h"

#include <chrono>

namespace dsv3::server {

void Delta::Append(Delta&& d) {
  content += d.content;
  reasoning += d.reasoning;
  for (auto& c : d.tool_calls) tool_calls.push_back(std::move(c));
  for (auto& l : d.logprobs) logprobs.push_back(std::move(l));
}

namespace {
std::string CallIdPrefix() {
  static std::atomic<uint64_t> counter{0};
  char buf[32];
  std::snprintf(buf, sizeof(buf), "call_%llx_", static_cast<unsigned long long>(counter.fetch_add(1) + 1));
  return buf;
}
}  // namespace

Generation::Generation(const TextCodec& codec, const ApiRequest& request, bool starts_in_reasoning, Metrics& metrics,
                       double arrived)
    : chat_(request.endpoint == Endpoint::kChat),
      logprobs_(request.logprobs),
      metrics_(metrics),
      arrived_(arrived),
      text_(codec.NewStream(/*keep_special=*/chat_)),
      stop_(request.stop),
      chat_parser_(starts_in_reasoning, CallIdPrefix()) {}

GenerationRequest Generation::MakeRequest(std::vector<int32_t> prompt, int64_t max_tokens, double deadline) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.deadline = deadline;
  r.logprobs = logprobs_;
  auto self = shared_from_this();
  r.on_token = [self](const TokenEvent& ev) { return self->OnToken(ev); };
  r.on_finish = [self](const FinishInfo& info) { self->OnFinish(info); };
  return r;
}

void Generation::Route(const std::string& text, Delta* d) {
  if (text.empty()) return;
  if (!chat_) {
    d->content += text;
    return;
  }
  ChatPieces pieces;
  chat_parser_.Add(text, &pieces);
  d->content += pieces.content;
  d->reasoning += pieces.reasoning;
  for (auto& c : pieces.tool_calls) d->tool_calls.push_back(std::move(c));
}

bool Generation::OnToken(const TokenEvent& ev) {
  const double now = MonotonicSeconds();
  if (ev.index == 0) {
    first_token_ = now;
    metrics_.ObserveTimeToFirstToken(now - arrived_);
  } else {
    metrics_.ObserveInterTokenLatency(now - last_token_);
  }
  last_token_ = now;
  Delta d;
  bool matched = false;
  const std::string text = text_->Add(ev);
  if (logprobs_ >= 0)
    d.logprobs.push_back(LogprobEntry{ev.token, ev.logprob, {ev.top.begin(), ev.top.end()}, text_bytes_});
  text_bytes_ += static_cast<int64_t>(text.size());
  Route(stop_.Add(text, &matched), &d);
  Push(std::move(d), false, nullptr);
  return !matched;
}

void Generation::OnFinish(const FinishInfo& info) {
  Delta d;
  if (!stop_.matched()) {
    bool matched = false;
    std::string tail = stop_.Add(text_->Flush(), &matched);
    if (!matched) tail += stop_.Flush();
    Route(tail, &d);
  }
  if (chat_) {
    ChatPieces pieces;
    chat_parser_.Flush(&pieces);
    d.content += pieces.content;
    d.reasoning += pieces.reasoning;
  }
  if (info.completion_tokens > 0) metrics_.ObserveRequestDuration(last_token_ - arrived_);
  Push(std::move(d), true, &info);
}

void Generation::Push(Delta&& d, bool finished, const FinishInfo* info) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tool_calls_ += static_cast<int>(d.tool_calls.size());
    pending_.Append(std::move(d));
    if (finished) {
      finished_ = true;
      info_ = *info;
    }
  }
  cv_.notify_all();
}

bool Generation::Take(double timeout_s, Delta* out) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return finished_ || !pending_.empty(); });
  out->Append(std::move(pending_));
  pending_ = Delta();
  return finished_;
}

}  // namespace dsv3::server
