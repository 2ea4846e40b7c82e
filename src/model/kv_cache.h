// The latent KV cache of MLA: per sequence slot, per layer (MTP layers
// included), per position, one row of kv_lora_rank + qk_rope_head_dim values:
// the normalised latent c followed by the rotated shared key k_pe. Nothing is
// stored per head. Rows are addressed by position, so rolling back (e.g. after
// rejected speculative tokens) is just truncating a slot's length.
//
// Rows are float32, or (KvCacheType::kF8E4M3) e4m3 bytes with two float32
// scales per row, amax/448 of the latent part and of the rotary part: a
// quarter of the memory and of the bytes attention reads per token.
#pragma once

#include <cstdint>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/status.h"
#include "model/config.h"
#include "ops/ops.h"

namespace dsv3 {

enum class KvCacheType { kF32, kF8E4M3 };

class KvCache {
 public:
  KvCache(const Config& config, int64_t num_slots, int64_t capacity, KvCacheType type = KvCacheType::kF32);

  int64_t num_slots() const { return num_slots_; }
  int64_t capacity() const { return capacity_; }
  int64_t num_layers() const { return num_layers_; }
  int64_t row_dim() const { return row_dim_; }
  KvCacheType type() const { return type_; }

  // Writes the row for (slot, layer, position) from row [row_dim] floats.
  void Store(int64_t slot, int64_t layer, int64_t pos, const float* row);
  // Reads it back (dequantized) into out [row_dim].
  void Load(int64_t slot, int64_t layer, int64_t pos, float* out) const;
  // All rows of (slot, layer), as the attention op reads them.
  ops::LatentRowsView Rows(int64_t slot, int64_t layer) const;

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

  size_t bytes() const { return f32_.size() * sizeof(float) + f8_.size() + scale_.size() * sizeof(float); }

 private:
  int64_t Index(int64_t slot, int64_t layer, int64_t pos) const {
    return (slot * num_layers_ + layer) * capacity_ + pos;
  }
  int64_t num_slots_, capacity_, num_layers_, row_dim_, rc_;
  KvCacheType type_;
  AlignedBuffer<float> f32_;   // [slots, layers, capacity, row_dim] (kF32)
  AlignedBuffer<uint8_t> f8_;  // [slots, layers, capacity, row_dim] (kF8E4M3)
  std::vector<float> scale_;   // [slots, layers, capacity, 2] (kF8E4M3)
  int num_stacks_;
  std::vector<int64_t> length_;
};

}  // namespace dsv3
