// What the generation endpoints share once a request is running, whatever
// format they answer in (chat/completions chunks, Responses API events):
// the count of responses still being written (shutdown waits for it), the
// error a generation that did not complete is reported with, the wait for a
// whole answer, the request's log line, and the Server-Sent Events pump that
// waits for output, writes it, keeps an idle stream alive and notices a
// client that went away. Implemented in completion_handler.cc; the Responses
// API (responses_handler.cc) uses the same pieces as chat.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/api.h"
#include "server/generation.h"

namespace httplib {
class DataSink;
struct Response;
}  // namespace httplib

namespace dsv3::server {

// Counts a generation response from submission until it is fully written.
struct ActiveGuard {
  explicit ActiveGuard(std::atomic<int>& n) : count(n) { ++count; }
  ~ActiveGuard() { --count; }
  ActiveGuard(const ActiveGuard&) = delete;
  ActiveGuard& operator=(const ActiveGuard&) = delete;
  std::atomic<int>& count;
};

// Whether a choice ended as asked (a stop, or its token limit) rather than by
// a timeout, shutdown or internal error.
inline bool Completed(const FinishInfo& info) {
  return info.reason == FinishReason::kStop || info.reason == FinishReason::kLength;
}

// The error a generation that did not complete is reported with (timeout,
// shutdown, internal error).
ApiError EndedError(const FinishInfo& info, double timeout_s);

// Waits until every choice has ended, handing each choice's output to
// `on_delta` as it arrives. The first choice that did not complete cancels
// the others (no one will read them) and is returned as the error.
std::optional<ApiError> AwaitChoices(ChoiceSet& choices, double timeout_s,
                                     const std::function<void(int, Delta&&)>& on_delta);

// One line on stderr for a finished generation request.
void LogFinished(const std::string& path, bool stream, int status, const ChoiceSet& choices);

// The writer of one streamed response, owned by its content provider. A
// subclass says what the events are (Produce); Step does the rest.
class SseStream {
 public:
  virtual ~SseStream() = default;
  // Called repeatedly by httplib; false aborts the response.
  bool Step(httplib::DataSink& sink);
  // Called however the response ended; a no-op once the choices finished.
  void Cancel() { choices->Cancel(); }

  std::shared_ptr<ChoiceSet> choices;
  std::shared_ptr<ActiveGuard> active;
  double last_write = 0, timeout_s = 0;
  bool log = false;
  std::string path;

 protected:
  // Appends the events ready now to *out, waiting up to 0.25 s for output
  // when it has nothing else to send; true once *out ends the stream.
  virtual bool Produce(std::string* out) = 0;

 private:
  bool Abort();
  void LogWhenEnded(int status);
};

// Answers `res` with `stream` as text/event-stream.
void ServeSse(httplib::Response& res, std::shared_ptr<SseStream> stream);

}  // namespace dsv3::server
