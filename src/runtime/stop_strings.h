// Stop strings over streamed text. Text arrives in pieces (one per token,
// possibly several tokens per stop string); the matcher releases only what
// can no longer turn into a stop string, holding back a tail that is a prefix
// of one. When a stop string completes, the text before it is released and
// the rest (the stop string and anything after it) is dropped, as OpenAI does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dsv3 {

class StopMatcher {
 public:
  StopMatcher() = default;
  explicit StopMatcher(std::vector<std::string> stops);  // empty strings are ignored

  // Appends `text`; returns the text now safe to emit. Sets *matched when a
  // stop string completed (then nothing more should be added).
  std::string Add(std::string_view text, bool* matched);
  // At the end of generation: the held-back tail (it never became a stop string).
  std::string Flush();

  bool empty() const { return stops_.empty(); }
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace dsv3
