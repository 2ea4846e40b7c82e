// One generation request in flight, between the scheduler thread (which
// produces tokens) and the HTTP thread (which writes the response). Tokens are
// turned into text on the scheduler thread, so a completed stop string ends the
// sequence at exactly that token: detokenize (whole UTF-8 characters), apply
// stop strings, split chat output into reasoning / content / tool calls, and
// queue the piece (with its logprobs) for the HTTP thread, which takes
// everything queued so far as one Delta.
#pragma once

#include <condition_variable>
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

class Generation : public std::enable_shared_from_this<Generation> {
 public:
  // `chat` selects the chat output parser; `starts_in_reasoning` is the chat
  // prompt's state. `arrived` is when the HTTP request arrived (for TTFT).
  Generation(const TextCodec& codec, const ApiRequest& request, bool starts_in_reasoning, Metrics& metrics,
             double arrived);

  // The scheduler request with this generation's callbacks wired in.
  GenerationRequest MakeRequest(std::vector<int32_t> prompt, int64_t max_tokens, double deadline);
  void set_handle(std::shared_ptr<SequenceHandle> h) { handle_ = std::move(h); }
  void Cancel() {
    if (handle_) handle_->Cancel();
  }

  // HTTP side: waits up to `timeout_s` for output, moves everything queued into
  // *out (appending) and returns true once the generation has finished and
  // all of its output has been taken.
  bool Take(double timeout_s, Delta* out);
  // Valid after Take returned true.
  const FinishInfo& info() const { return info_; }
  bool used_tools() const { return tool_calls_ > 0; }
  double arrived() const { return arrived_; }
  double first_token_time() const { return first_token_; }

 private:
  bool OnToken(const TokenEvent& ev);
  void OnFinish(const FinishInfo& info);
  void Route(const std::string& text, Delta* d);
  void Push(Delta&& d, bool finished, const FinishInfo* info);

  bool chat_;
  int logprobs_;
  Metrics& metrics_;
  double arrived_, first_token_ = 0, last_token_ = 0;
  int64_t text_bytes_ = 0;  // decoded text so far (for text_offset)
  std::unique_ptr<TextStream> text_;
  StopMatcher stop_;
  ChatOutputParser chat_parser_;
  std::shared_ptr<SequenceHandle> handle_;

  std::mutex mu_;
  std::condition_variable cv_;
  Delta pending_;
  bool finished_ = false;
  FinishInfo info_;
  int tool_calls_ = 0;
};

}  // namespace dsv3::server
