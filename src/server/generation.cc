// The scheduler-thread output pipeline and the HTTP-thread hand-off; see generation.h.
#include "server/generation.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

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

double ChoiceGroup::first_token_time() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_token_;
}

uint64_t ChoiceGroup::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

void ChoiceGroup::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++version_;
  }
  cv_.notify_all();
}

void ChoiceGroup::WaitPast(uint64_t seen, double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return version_ != seen; });
}

void ChoiceGroup::OnToken(double now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (first_token_ > 0) return;
  first_token_ = now;
  metrics_.ObserveTimeToFirstToken(now - arrived_);
}

void ChoiceGroup::OnChoiceFinished(double last_token, bool produced) {
  std::lock_guard<std::mutex> lock(mu_);
  if (produced) last_token_ = std::max(last_token_, last_token), produced_ = true;
  if (--running_ == 0 && produced_) metrics_.ObserveRequestDuration(last_token_ - arrived_);
}

Generation::Generation(const TextCodec& codec, const ApiRequest& request, bool starts_in_reasoning,
                       std::shared_ptr<ChoiceGroup> group)
    : chat_(request.endpoint == Endpoint::kChat),
      logprobs_(request.logprobs),
      group_(std::move(group)),
      text_(codec.NewStream(/*keep_special=*/chat_)),
      stop_(request.stop),
      chat_parser_(starts_in_reasoning, CallIdPrefix()) {}

void Generation::Wire(GenerationRequest& r) {
  r.logprobs = logprobs_;
  auto self = shared_from_this();
  r.on_token = [self](const TokenEvent& ev) { return self->OnToken(ev); };
  r.on_finish = [self](const FinishInfo& info) { self->OnFinish(info); };
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
    group_->OnToken(now);
  } else {
    group_->metrics().ObserveInterTokenLatency(now - last_token_);
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
  group_->OnChoiceFinished(last_token_, info.completion_tokens > 0);
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
  group_->Notify();
}

bool Generation::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !pending_.empty() || (finished_ && !end_taken_);
}

bool Generation::Take(Delta* out) {
  std::lock_guard<std::mutex> lock(mu_);
  out->Append(std::move(pending_));
  pending_ = Delta();
  if (!finished_ || end_taken_) return false;
  end_taken_ = true;
  return true;
}

ChoiceSet::ChoiceSet(const TextCodec& codec, const ApiRequest& request, bool starts_in_reasoning, Metrics& metrics,
                     double arrived)
    : group_(std::make_shared<ChoiceGroup>(metrics, arrived, request.n)), done_(request.n, 0) {
  for (int i = 0; i < request.n; ++i)
    gens_.push_back(std::make_shared<Generation>(codec, request, starts_in_reasoning, group_));
}

std::vector<GenerationRequest> ChoiceSet::MakeRequests(const GenerationRequest& base) {
  std::vector<GenerationRequest> out(gens_.size(), base);
  for (size_t i = 0; i < gens_.size(); ++i) {
    out[i].sampling.seed = ChoiceSeed(base.sampling.seed, static_cast<int64_t>(i));
    gens_[i]->Wire(out[i]);
  }
  return out;
}

void ChoiceSet::set_handles(const std::vector<std::shared_ptr<SequenceHandle>>& handles) {
  for (size_t i = 0; i < gens_.size() && i < handles.size(); ++i) gens_[i]->set_handle(handles[i]);
}

void ChoiceSet::Cancel() {
  for (auto& g : gens_) g->Cancel();
}

bool ChoiceSet::Take(double timeout_s, const std::function<void(int, Delta&&, bool)>& fn) {
  auto all_done = [&] { return std::all_of(done_.begin(), done_.end(), [](char d) { return d != 0; }); };
  if (all_done()) return true;
  const uint64_t seen = group_->version();
  bool ready = false;
  for (int i = 0; i < size() && !ready; ++i) ready = !done_[i] && gens_[i]->ready();
  if (!ready && timeout_s > 0) group_->WaitPast(seen, timeout_s);
  for (int i = 0; i < size(); ++i) {
    if (done_[i]) continue;
    Delta d;
    done_[i] = gens_[i]->Take(&d);
    if (!d.empty() || done_[i]) fn(i, std::move(d), done_[i] != 0);
  }
  return all_done();
}

FinishInfo ChoiceSet::Usage() const {
  FinishInfo u = gens_[0]->info();
  for (size_t i = 1; i < gens_.size(); ++i) u.completion_tokens += gens_[i]->info().completion_tokens;
  return u;
}

}  // namespace dsv3::server
