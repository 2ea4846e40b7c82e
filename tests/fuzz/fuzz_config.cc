// libFuzzer target: arbitrary text as config.json. Parsing must never crash;
// an accepted config must be internally consistent enough for the derived
// quantities and the tensor list to be computed.
#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/stats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = dsv3::ParseConfig(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!c.ok()) return 0;
  (void)c->SoftmaxScale();
  (void)c->RopeInvFreq();
  // Keep the tensor listing affordable for absurdly large but valid configs.
  if (c->num_layers_with_mtp() * (c->n_routed_experts + 8) < 100000) (void)dsv3::ComputeStats(*c);
  return 0;
}
