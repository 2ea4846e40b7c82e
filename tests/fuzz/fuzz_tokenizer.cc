// libFuzzer target: arbitrary text as tokenizer.json (and, after a NUL byte,
// tokenizer_config.json). Loading must never crash or hang; an accepted
// tokenizer must encode and decode text (including invalid UTF-8 and every
// byte value) and reject out-of-range ids with an error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t nul = all.find('\0');
  const std::string_view tok_json = all.substr(0, nul);
  const std::string_view cfg_json = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  auto t = dsv3::Tokenizer::FromJson(tok_json, cfg_json, "tokenizer.json", "tokenizer_config.json");
  if (!t.ok()) return 0;
  static const char kText[] = "Hello, world! 123 \xe4\xbd\xa0\xe5\xa5\xbd \xff\xfe tabs\t\n <|x|>";
  const std::vector<int32_t> ids = (*t)->Encode(kText);
  for (int32_t id : ids)
    if (!(*t)->IsValidId(id)) std::abort();  // encode produced an id decode would refuse
  (void)(*t)->Decode(ids);
  const int32_t bad[] = {-1, (*t)->vocab_size(), 0x7fffffff};
  for (int32_t id : bad)
    if ((*t)->Decode(std::span<const int32_t>(&id, 1)).ok() && !(*t)->IsValidId(id)) std::abort();
  return 0;
}
