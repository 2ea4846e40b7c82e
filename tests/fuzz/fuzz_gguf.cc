// libFuzzer target: arbitrary bytes as a GGUF image. Must never crash, hang
// or read out of bounds; valid images must have in-bounds tensors, and the
// deepseek2 metadata reader must turn any of them into a Config or an error,
// and the embedded-tokenizer reader into a tokenizer or an error.
#include <cstdint>
#include <cstdlib>

#include "io/gguf.h"
#include "convert/gguf_tokenizer.h"
#include "model/gguf_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = dsv3::GgufFile::Parse(data, size, "fuzz");
  if (!f.ok()) return 0;
  for (const auto& t : (*f)->tensors()) {
    if (t.data < data || t.data + t.nbytes > data + size) std::abort();
    volatile uint8_t sink = 0;
    if (t.nbytes) sink ^= t.data[0] ^ t.data[t.nbytes - 1];
  }
  auto c = dsv3::ConfigFromGguf(**f);
  if (c.ok()) (void)dsv3::ValidateConfig(*c, "fuzz");
  auto tok = dsv3::TokenizerFromGguf(**f);
  if (tok.ok()) (void)(*tok)->Encode("Hello, world! 123");
  return 0;
}
