// libFuzzer target: arbitrary text as model.safetensors.index.json. Parsing
// must never crash; every accepted shard name must stay inside the
// checkpoint directory (a plain, non-empty file name).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto map = dsv3::ParseSafetensorsIndex(std::string_view(reinterpret_cast<const char*>(data), size), "index.json");
  if (!map.ok()) return 0;
  for (const auto& [tensor, shard] : *map)
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") std::abort();
  return 0;
}
