// Latent KV cache storage; see kv_cache.h.
#include "model/kv_cache.h"

#include <algorithm>

namespace dsv3 {

KvCache::KvCache(const Config& config, int64_t num_slots, int64_t capacity)
    : num_slots_(num_slots),
      capacity_(capacity),
      num_layers_(config.num_layers_with_mtp()),
      row_dim_(config.kv_latent_dim()),
      data_(static_cast<size_t>(num_slots * num_layers_ * capacity * row_dim_)),
      num_stacks_(1 + static_cast<int>(config.num_nextn_predict_layers)),
      length_(num_slots * num_stacks_, 0) {}

void KvCache::Truncate(int64_t slot, int64_t n) {
  for (int s = 0; s < num_stacks_; ++s) set_length(slot, std::min(length(slot, s), n), s);
}

}  // namespace dsv3
