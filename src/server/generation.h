// One request in flight, between the scheduler thread (which produces tokens)
// and the HTTP thread (which writes the response). A request asks for n >= 1
// choices: n sequences of one prompt (the scheduler prefills it once, see
// Scheduler::SubmitGroup), each a Generation. Tokens are turned into text on
// the scheduler thread, so a completed stop string ends the sequence at
// exactly that token: detokenize (whole UTF-8 characters), apply stop
// strings, split chat output into reasoning / content / tool calls, and queue
// the piece (with its logprobs) for the HTTP thread. The choices share one
// wake-up (ChoiceGroup), so the HTTP thread sleeps until any of them has
// output rather than polling each; ChoiceSet::Take hands it everything
// queued so far, per choice.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/scheduler.h"
#include "runtime/stop_strings.h"
#include "server/api.h"
#include "server/chat_output.h"
#include "server/metrics.h"
#include "server/text_codec.h"

namespace dsv3::server {

struct LogprobEntry {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
  int64_t text_offset = 0;  // bytes of completion text before this token's text
};

struct Delta {
  std::string content, reasoning;
  std::vector<ToolCallOut> tool_calls;
  std::vector<LogprobEntry> logprobs;
  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty() && logprobs.empty(); }
  void Append(Delta&& d);
};

// What the choices of one request share: the HTTP thread's wake-up (any
// choice's output raises it) and the request-level metrics, observed once
// per request: time to the first token of any choice, and the duration until
// the last choice ends.
class ChoiceGroup {
 public:
  ChoiceGroup(Metrics& metrics, double arrived, int n) : metrics_(metrics), arrived_(arrived), running_(n) {}
  Metrics& metrics() { return metrics_; }
  double arrived() const { return arrived_; }
  double first_token_time() const;  // 0 until some choice has a token

  // A counter raised by Notify: read it, check the choices, then WaitPast it,
  // and output queued in between is never slept through.
  uint64_t version() const;
  void Notify();
  void WaitPast(uint64_t seen, double timeout_s);

  void OnToken(double now);                          // the first call observes TTFT
  void OnChoiceFinished(double last_token, bool produced);  // the last call observes the duration

 private:
  Metrics& metrics_;
  const double arrived_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t version_ = 0;
  double first_token_ = 0, last_token_ = 0;
  int running_;
  bool produced_ = false;
};

// One choice: one sequence's tokens -> text -> stop strings -> chat pieces.
class Generation : public std::enable_shared_from_this<Generation> {
 public:
  // `chat` selects the chat output parser; `starts_in_reasoning` is the chat
  // prompt's state.
  Generation(const TextCodec& codec, const ApiRequest& request, bool starts_in_reasoning,
             std::shared_ptr<ChoiceGroup> group);

  // `r` (prompt, limits, sampling) with this choice's logprobs and callbacks wired in.
  void Wire(GenerationRequest& r);
  void set_handle(std::shared_ptr<SequenceHandle> h) { handle_ = std::move(h); }
  void Cancel() {
    if (handle_) handle_->Cancel();
  }

  // HTTP side. ready(): output or the end not yet taken. Take moves what is
  // queued into *out (appending) and returns true, once, when it hands over
  // the end (all output taken).
  bool ready() const;
  bool Take(Delta* out);
  // Complete after Take returned true (a copy: the log may look earlier).
  FinishInfo info() const {
    std::lock_guard<std::mutex> lock(mu_);
    return info_;
  }
  bool used_tools() const { return tool_calls_ > 0; }

 private:
  bool OnToken(const TokenEvent& ev);
  void OnFinish(const FinishInfo& info);
  void Route(const std::string& text, Delta* d);
  void Push(Delta&& d, bool finished, const FinishInfo* info);

  bool chat_;
  int logprobs_;
  std::shared_ptr<ChoiceGroup> group_;
  double last_token_ = 0;
  int64_t text_bytes_ = 0;  // decoded text so far (for text_offset)
  std::unique_ptr<TextStream> text_;
  StopMatcher stop_;
  ChatOutputParser chat_parser_;
  std::shared_ptr<SequenceHandle> handle_;

  mutable std::mutex mu_;
  Delta pending_;
  bool finished_ = false, end_taken_ = false;
  FinishInfo info_;
  int tool_calls_ = 0;
};

// The n choices of one request (n >= 1), in index order.
class ChoiceSet {
 public:
  ChoiceSet(const TextCodec& codec, const ApiRequest& request, bool starts_in_reasoning, Metrics& metrics,
            double arrived);

  // n scheduler requests from `base` (prompt, limits, sampling, stops): each
  // with its choice's callbacks and seed (ChoiceSeed: choice 0 keeps the
  // request's seed). For Scheduler::SubmitGroup.
  std::vector<GenerationRequest> MakeRequests(const GenerationRequest& base);
  void set_handles(const std::vector<std::shared_ptr<SequenceHandle>>& handles);
  void Cancel();

  // Waits up to `timeout_s` until some choice has output, then calls
  // fn(index, delta, finished) for each choice with new output or its end.
  // Returns true once every choice has ended (and stays true).
  bool Take(double timeout_s, const std::function<void(int, Delta&&, bool)>& fn);

  int size() const { return static_cast<int>(gens_.size()); }
  const Generation& choice(int i) const { return *gens_[i]; }
  const ChoiceGroup& group() const { return *group_; }
  // OpenAI's usage of n choices (after every choice ended): the prompt once
  // (choice 0's counts, the sequence that read it), completion tokens summed.
  FinishInfo Usage() const;

 private:
  std::shared_ptr<ChoiceGroup> group_;
  std::vector<std::shared_ptr<Generation>> gens_;
  std::vector<char> done_;
};

}  // namespace dsv3::server
