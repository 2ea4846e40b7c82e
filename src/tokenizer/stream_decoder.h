// Incremental detokenizer for generation: tokens go in one at a time and
// only complete UTF-8 comes out, so a character split over two tokens is
// never printed in halves. Bytes that can no longer become valid UTF-8 are
// emitted as U+FFFD by the same rule one-shot Decode uses, hence the
// concatenated output always equals Tokenizer::Decode of the same ids.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

  // Adds one token; appends whatever text is now complete to `out`.
  Status Add(int32_t id, std::string& out);
  // Ends the stream: an unfinished character becomes U+FFFD.
  void Flush(std::string& out);
  void Reset() { pending_.clear(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes of an unfinished character (< 4 bytes)
};

}  // namespace dsv3
