// AdamW, clipping and learning-rate schedules; see optimizer.h.
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/parallel.h"

namespace dsv3::train {

bool ParseSchedule(const std::string& s, Schedule* out) {
  if (s == "cosine") *out = Schedule::kCosine;
  else if (s == "step") *out = Schedule::kStep;
  else return false;
  return true;
}

double LearningRate(const OptimizerOptions& o, int64_t step, int64_t total) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == Schedule::kStep) {
    const double frac = static_cast<double>(step) / std::max<int64_t>(total, 1);
    return frac < 0.8 ? o.lr : frac < 0.9 ? o.lr * 0.316 : o.lr * 0.1;
  }
  const int64_t span = std::max<int64_t>(total - o.warmup_steps - 1, 1);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  const double floor = o.lr * o.min_lr_ratio;
  return floor + (o.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

AdamW::AdamW(TrainParams& params, const OptimizerOptions& options, MomentRanges ranges)
    : params_(params), options_(options), ranges_(std::move(ranges)) {
  for (const ParamTensor& p : params_.tensors()) {
    offset_.push_back(flat_size_);
    if (p.grad) flat_size_ += p.numel;
  }
  if (ranges_.empty()) ranges_.push_back({0, flat_size_});
  for (MomentRange& r : ranges_)
    if (r.end < 0) r.end = flat_size_;
  int64_t total = 0;
  for (const MomentRange& r : ranges_) local_start_.push_back(total), total += r.end - r.begin;
  if (options_.bf16_moments) {
    m16_.assign(total, 0), v16_.assign(total, 0);
  } else {
    m_.assign(total, 0.0f), v_.assign(total, 0.0f);
  }
}

int64_t AdamW::Local(int64_t flat) const {
  // The last range starting at or before `flat`.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), flat,
                             [](int64_t f, const MomentRange& r) { return f < r.begin; });
  if (it == ranges_.begin()) return -1;
  --it;
  if (flat >= it->end) return -1;
  return local_start_[it - ranges_.begin()] + (flat - it->begin);
}

double AdamW::GradNorm() const {
  // Per-chunk sums added in chunk order: the same value for any thread count.
  GradNormParts(&norm_parts_);
  double total = 0.0;
  for (double s : norm_parts_) total += s;
  return std::sqrt(total);
}

void AdamW::GradNormParts(std::vector<double>* out) const {
  const auto& chunks = params_.chunks();
  std::vector<double>& parts = *out;
  parts.assign(chunks.size(), 0.0);
  ParallelFor(static_cast<int64_t>(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      if (!Owns(chunks[c])) continue;
      const float* g = params_.tensors()[chunks[c].tensor].grad;
      double s = 0.0;
      for (int64_t i = chunks[c].begin; i < chunks[c].end; ++i) s += double(g[i]) * g[i];
      parts[c] = s;
    }
  });
}

int64_t AdamW::StateBytes() const {
  return static_cast<int64_t>(m_.size() * sizeof(float) + v_.size() * sizeof(float) + m16_.size() * 2 +
                              v16_.size() * 2);
}

void AdamW::LocalMoments(std::vector<float>* m, std::vector<float>* v) const {
  const int64_t n = static_cast<int64_t>(options_.bf16_moments ? m16_.size() : m_.size());
  m->resize(n), v->resize(n);
  for (int64_t k = 0; k < n; ++k) {
    (*m)[k] = options_.bf16_moments ? Bf16ToF32(m16_[k]) : m_[k];
    (*v)[k] = options_.bf16_moments ? Bf16ToF32(v16_[k]) : v_[k];
  }
}

void AdamW::Update(int64_t t, double lr, double grad_norm) {
  const OptimizerOptions& o = options_;
  const float clip = (o.clip_norm > 0 && grad_norm > o.clip_norm) ? static_cast<float>(o.clip_norm / grad_norm) : 1.0f;
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  const float bc1 = static_cast<float>(1.0 - std::pow(o.beta1, static_cast<double>(t)));
  const float bc2 = static_cast<float>(1.0 - std::pow(o.beta2, static_cast<double>(t)));
  const float step = static_cast<float>(lr), eps = static_cast<float>(o.eps);
  const float decayed = static_cast<float>(1.0 - lr * o.weight_decay);
  const bool bf16 = o.bf16_moments;
  const auto& chunks = params_.chunks();
  ParallelFor(static_cast<int64_t>(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      if (!Owns(chunks[c])) continue;
      ParamTensor& p = params_.tensors()[chunks[c].tensor];
      const float decay = p.decay ? decayed : 1.0f;
      const int64_t base = Local(offset_[chunks[c].tensor] + chunks[c].begin) - chunks[c].begin;
      for (int64_t i = chunks[c].begin; i < chunks[c].end; ++i) {
        const float g = p.grad[i] * clip;
        float m = bf16 ? Bf16ToF32(m16_[base + i]) : m_[base + i];
        float v = bf16 ? Bf16ToF32(v16_[base + i]) : v_[base + i];
        m = b1 * m + (1.0f - b1) * g;
        v = b2 * v + (1.0f - b2) * g * g;
        if (bf16) {  // the stored (rounded) moments are the ones the update uses
          m16_[base + i] = F32ToBf16(m), v16_[base + i] = F32ToBf16(v);
          m = Bf16ToF32(m16_[base + i]), v = Bf16ToF32(v16_[base + i]);
        } else {
          m_[base + i] = m, v_[base + i] = v;
        }
        // torch.optim.AdamW: decay first, then the Adam step.
        p.value[i] = p.value[i] * decay - step * (m / bc1) / (std::sqrt(v / bc2) + eps);
      }
    }
  });
}

void AdamW::GetMoments(size_t i, std::vector<float>* m, std::vector<float>* v) const {
  const ParamTensor& p = params_.tensors()[i];
  m->resize(p.numel), v->resize(p.numel);
  for (int64_t j = 0; j < p.numel; ++j) {
    const int64_t flat = offset_[i] + j, k = gm_.empty() ? Local(flat) : -1;
    if (!gm_.empty()) {
      (*m)[j] = gm_[flat], (*v)[j] = gv_[flat];
    } else if (k >= 0) {
      (*m)[j] = options_.bf16_moments ? Bf16ToF32(m16_[k]) : m_[k];
      (*v)[j] = options_.bf16_moments ? Bf16ToF32(v16_[k]) : v_[k];
    } else {
      (*m)[j] = (*v)[j] = 0.0f;  // another rank's part (not gathered)
    }
  }
}

void AdamW::SetMoments(size_t i, const float* m, const float* v) {
  const ParamTensor& p = params_.tensors()[i];
  for (int64_t j = 0; j < p.numel; ++j) {
    const int64_t k = Local(offset_[i] + j);
    if (k < 0) continue;  // another rank's part
    if (options_.bf16_moments) {
      m16_[k] = F32ToBf16(m[j]), v16_[k] = F32ToBf16(v[j]);
    } else {
      m_[k] = m[j], v_[k] = v[j];
    }
  }
}

}  // namespace dsv3::train
