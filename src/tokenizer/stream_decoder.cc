// Streaming detokenizer; see stream_decoder.h.
#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace dsv3 {

Status StreamDecoder::Add(int32_t id, std::string& out) {
  if (skip_special_ && tokenizer_.IsSpecial(id)) return Status::Ok();
  DSV3_RETURN_IF_ERROR(tokenizer_.AppendTokenBytes(id, pending_));
  size_t i = 0;
  while (i < pending_.size()) {
    size_t prefix = 0;
    const size_t n = utf8::SequenceLength(pending_, i, &prefix);
    if (n) {
      out.append(pending_, i, n);
      i += n;
    } else if (utf8::IsIncompletePrefix(pending_, i)) {
      break;  // the next token may complete it
    } else {
      out += utf8::kReplacement;
      i += prefix;
    }
  }
  pending_.erase(0, i);
  return Status::Ok();
}

void StreamDecoder::Flush(std::string& out) {
  if (!pending_.empty()) out += utf8::Lossy(pending_);
  pending_.clear();
}

}  // namespace dsv3
