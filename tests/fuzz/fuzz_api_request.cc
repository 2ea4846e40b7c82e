// libFuzzer target: arbitrary bytes as the body of POST /v1/completions or
// /v1/chat/completions (the first byte picks the endpoint). ParseRequest
// must never crash and must either accept the request or fill an error
// with an HTTP status in 4xx.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto endpoint = (data[0] & 1) ? dsv3::server::Endpoint::kChat : dsv3::server::Endpoint::kCompletions;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  dsv3::server::ApiError error;
  auto r = dsv3::server::ParseRequest(body, endpoint, &error);
  if (!r && (error.status < 400 || error.status > 499)) std::abort();
  return 0;
}
