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

void KvCache::CopyPrefix(int64_t src, int64_t dst, int64_t n) {
  // Rows of one (slot, layer) are contiguous by position: one copy per layer.
  for (int64_t l = 0; l < num_layers_; ++l) std::copy_n(Row(src, l, 0), n * row_dim_, Row(dst, l, 0));
  for (int s = 0; s < num_stacks_; ++s) set_length(dst, std::min(length(src, s), n), s);
}

void KvCache::Truncate(int64_t slot, int64_t n) {
  for (int s = 0; s < num_stacks_; ++s) set_length(slot, std::min(length(slot, s), n), s);
}

}  // namespace dsv3
