// libFuzzer target: arbitrary bytes as what a client sent before its body
// (the request line and headers the connection gate inspects). Finding the
// head's end must agree with a one-shot search whatever pieces it arrives
// in; a complete head is either refused with a 4xx/5xx status or accepted
// with a framing (Content-Length within --max-body, or chunked) that a
// worker can read without trusting the client any further.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/request_head.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kMaxBody = 1 << 20;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)dsv3::server::PlausibleHeadStart(bytes);
  const size_t end = dsv3::server::FindHeadEnd(bytes);
  size_t from = 0, pieces = 0;  // the same search resumed piece by piece
  for (size_t cut = size / 3 + 1; pieces < size; pieces += cut) {
    const size_t got = dsv3::server::FindHeadEnd(bytes.substr(0, pieces + cut > size ? size : pieces + cut), from);
    if (got != std::string_view::npos) {
      if (got != end) std::abort();
      break;
    }
    from = pieces + cut > size ? size : pieces + cut;
  }
  if (end == std::string_view::npos) return 0;
  const dsv3::server::HeadCheck check = dsv3::server::CheckRequestHead(bytes.substr(0, end), kMaxBody);
  if (check.status != 0) {
    if (check.status < 400 || check.status > 599) std::abort();
    return 0;
  }
  const auto& h = check.head;
  if (h.chunked && h.content_length >= 0) std::abort();  // framing must be unambiguous
  if (h.content_length > static_cast<int64_t>(kMaxBody)) std::abort();
  if (dsv3::server::RequestCharge(h, end, kMaxBody, 12.0) < 0) std::abort();
  return 0;
}
