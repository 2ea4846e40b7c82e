// libFuzzer target: arbitrary bytes as a safetensors image. Must never crash,
// hang or read out of bounds; valid images must have in-bounds tensors.
#include <cstdint>
#include <cstdlib>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = dsv3::SafetensorsFile::ParseImage(data, size, "fuzz", nullptr);
  if (!r.ok()) return 0;
  for (const auto& t : *r) {
    if (t.data < data || t.data + t.nbytes > data + size) std::abort();
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < t.nbytes; i += 4096) sink ^= t.data[i];
    if (t.nbytes) sink ^= t.data[t.nbytes - 1];
  }
  return 0;
}
