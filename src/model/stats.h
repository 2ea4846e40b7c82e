// Size figures derived from a Config alone: parameter counts (total, active
// per token, MTP) and latent KV-cache bytes. Used by `dsv3 inspect` and the
// benchmarks' roofline arithmetic.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace dsv3 {

struct ModelStats {
  int64_t main_params = 0;        // embedding + layers 0..L-1 + norm + head
  int64_t active_params = 0;      // per token: all but unchosen routed experts
  int64_t routed_expert_params = 0;  // all routed experts of the main layers
  int64_t mtp_params = 0;         // MTP layers, excluding their embed/head copies
  int64_t mtp_active_params = 0;  // MTP layers' params used per token (ditto)
  int64_t embedding_params = 0, head_params = 0;
  // Latent cache elements per token for the main layers: L * (rc + dr).
  int64_t kv_elements_per_token = 0;
  int64_t kv_elements_per_token_mtp = 0;  // the MTP layers' share
};

ModelStats ComputeStats(const Config& config);

}  // namespace dsv3
