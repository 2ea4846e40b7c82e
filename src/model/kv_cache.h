// The latent KV cache of MLA: per sequence slot, per layer (MTP layers
// included), per position, one row of kv_lora_rank + qk_rope_head_dim floats:
// the normalised latent c followed by the rotated shared key k_pe. Nothing is
// stored per head. Rows are addressed by position, so rolling back (e.g. after
// rejected speculative tokens) is just truncating a slot's length.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace dsv3 {

class KvCache {
 public:
  KvCache(const Config& config, int64_t num_slots, int64_t capacity);

  int64_t num_slots() const { return num_slots_; }
  int64_t capacity() const { return capacity_; }
  int64_t num_layers() const { return num_layers_; }
  int64_t row_dim() const { return row_dim_; }

  // The row for (slot, layer, position): [kv_lora_rank + qk_rope_head_dim].
  float* Row(int64_t slot, int64_t layer, int64_t pos) {
    return data_.data() + ((slot * num_layers_ + layer) * capacity_ + pos) * row_dim_;
  }
  const float* Row(int64_t slot, int64_t layer, int64_t pos) const {
    return data_.data() + ((slot * num_layers_ + layer) * capacity_ + pos) * row_dim_;
  }

  // Valid positions (rows [0, length) hold data) of a slot, per stack: stack
  // 0 is the main model, stack 1 + k is MTP depth k.
  int64_t length(int64_t slot, int stack = 0) const { return length_[slot * num_stacks_ + stack]; }
  void set_length(int64_t slot, int64_t n, int stack = 0) { length_[slot * num_stacks_ + stack] = n; }
  int num_stacks() const { return num_stacks_; }
  // Forgets positions >= n in every stack (rollback); rows are overwritten later.
  void Truncate(int64_t slot, int64_t n);
  void Clear(int64_t slot) { Truncate(slot, 0); }
  // Makes slot `dst` hold the first n positions of slot `src` (every layer;
  // each stack's length becomes min(its length in src, n)). Prefix reuse
  // between sequences (the server's scheduler) uses it.
  void CopyPrefix(int64_t src, int64_t dst, int64_t n);

  size_t bytes() const { return data_.size() * sizeof(float); }

 private:
  int64_t num_slots_, capacity_, num_layers_, row_dim_;
  std::vector<float> data_;
  int num_stacks_;
  std::vector<int64_t> length_;
};

}  // namespace dsv3
