// libFuzzer target: arbitrary text as an OpenAI-style messages file (what
// `dsv3 tokenize --chat` and `dsv3 chat --messages` read). Parsing must never
// crash; accepted messages are rendered with both chat formats dsv3 knows.
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/chat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto messages = dsv3::ParseChatMessagesText(text, "fuzz.json");
  if (!messages.ok()) return 0;
  static const auto dsv3_format = dsv3::ChatFormat::FromTemplate(dsv3::kDsv3ChatTemplate, "<s>", "</s>");
  if (dsv3_format.ok()) {
    (void)dsv3_format->Render(*messages, true);
    (void)dsv3_format->Render(*messages, false);
  }
  return 0;
}
