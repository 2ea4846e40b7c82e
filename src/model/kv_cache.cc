// Latent KV cache storage; see kv_cache.h.
#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"

namespace dsv3 {

KvCache::KvCache(const Config& config, int64_t num_slots, int64_t capacity, KvCacheType type)
    : num_slots_(num_slots),
      capacity_(capacity),
      num_layers_(config.num_layers_with_mtp()),
      row_dim_(config.kv_latent_dim()),
      rc_(config.kv_lora_rank),
      type_(type),
      num_stacks_(1 + static_cast<int>(config.num_nextn_predict_layers)),
      length_(num_slots * num_stacks_, 0) {
  const size_t rows = static_cast<size_t>(num_slots * num_layers_ * capacity);
  if (type_ == KvCacheType::kF32) {
    f32_ = AlignedBuffer<float>(rows * row_dim_);
  } else {
    f8_ = AlignedBuffer<uint8_t>(rows * row_dim_);
    scale_.resize(rows * 2, 1.0f);
  }
}

namespace {
// dst [n] = e4m3(src / s) with s = amax / 448 (1 for an all-zero part).
float QuantizePart(const float* src, int64_t n, uint8_t* dst) {
  const float amax = ops::AbsMax(src, n);
  const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
  ops::EncodeF8E4M3(src, n, s, dst);
  return s;
}
}  // namespace

void KvCache::Store(int64_t slot, int64_t layer, int64_t pos, const float* row) {
  const int64_t i = Index(slot, layer, pos);
  if (type_ == KvCacheType::kF32) {
    std::copy_n(row, row_dim_, f32_.data() + i * row_dim_);
    return;
  }
  uint8_t* dst = f8_.data() + i * row_dim_;
  scale_[2 * i] = QuantizePart(row, rc_, dst);
  scale_[2 * i + 1] = QuantizePart(row + rc_, row_dim_ - rc_, dst + rc_);
}

void KvCache::Load(int64_t slot, int64_t layer, int64_t pos, float* out) const {
  const ops::LatentRowsView v = Rows(slot, layer);
  for (int64_t k = 0; k < row_dim_; ++k) out[k] = ops::ref::LatentValue(v, pos, k, rc_);
}

ops::LatentRowsView KvCache::Rows(int64_t slot, int64_t layer) const {
  ops::LatentRowsView v;
  const int64_t i = Index(slot, layer, 0);
  v.stride = row_dim_;
  if (type_ == KvCacheType::kF32) {
    v.f32 = f32_.data() + i * row_dim_;
  } else {
    v.f8 = f8_.data() + i * row_dim_;
    v.f8_scale = scale_.data() + 2 * i;
  }
  return v;
}

void KvCache::CopyPrefix(int64_t src, int64_t dst, int64_t n) {
  // Rows of one (slot, layer) are contiguous by position: one copy per layer
  // (bytes and scales as stored, so an FP8 cache is copied without requantizing).
  for (int64_t l = 0; l < num_layers_; ++l) {
    const int64_t from = Index(src, l, 0), to = Index(dst, l, 0);
    if (type_ == KvCacheType::kF32) {
      std::copy_n(f32_.data() + from * row_dim_, n * row_dim_, f32_.data() + to * row_dim_);
    } else {
      std::copy_n(f8_.data() + from * row_dim_, n * row_dim_, f8_.data() + to * row_dim_);
      std::copy_n(scale_.data() + 2 * from, 2 * n, scale_.data() + 2 * to);
    }
  }
  for (int s = 0; s < num_stacks_; ++s) set_length(dst, std::min(length(src, s), n), s);
}

void KvCache::Truncate(int64_t slot, int64_t n) {
  for (int s = 0; s < num_stacks_; ++s) set_length(slot, std::min(length(slot, s), n), s);
}

}  // namespace dsv3
