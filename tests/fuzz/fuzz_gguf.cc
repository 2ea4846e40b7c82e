// libFuzzer target: arbitrary bytes as a GGUF image. Must never crash, hang
// or read out of bounds; valid images must have in-bounds tensors whose
// first blocks (any of the quantized types: Q4_0 .. Q8_0, K-quants, IQ4)
// dequantize in bounds, and the deepseek2 metadata reader must turn any of
// them into a Config or an error, and the embedded-tokenizer reader into a
// tokenizer or an error. tests/fuzz/gguf_type_seeds.py writes seeds with a
// tensor of each type.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "core/dtype.h"
#include "core/ggml_quants.h"
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
    if (t.dtype && dsv3::IsBlockType(*t.dtype)) {
      const int64_t elems = dsv3::DTypeBlockElems(*t.dtype), bytes = dsv3::DTypeBlockBytes(*t.dtype);
      if (t.nbytes % static_cast<uint64_t>(bytes) != 0) std::abort();  // whole blocks only
      const int64_t blocks = std::min<int64_t>(static_cast<int64_t>(t.nbytes) / bytes, 4);
      static float out[4 * 256];
      dsv3::DequantizeBlocks(*t.dtype, t.data, blocks * elems, out);
    }
  }
  auto c = dsv3::ConfigFromGguf(**f);
  if (c.ok()) (void)dsv3::ValidateConfig(*c, "fuzz");
  auto tok = dsv3::TokenizerFromGguf(**f);
  if (tok.ok()) (void)(*tok)->Encode("Hello, world! 123");
  return 0;
}
