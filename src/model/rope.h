// The rotary tables of one config: cos and sin of position x frequency for
// the dr/2 rotary pairs, YaRN-corrected frequencies and the YaRN cos/sin
// factor included. Shared by the inference model and the trainer so both
// rotate by exactly the same numbers. Frequencies and angles are computed in
// double: the reference's float32 product pos * inv_freq is off by up to
// pos * 2^-23 radians (0.02 rad at position 160K on the fastest pair), which
// at 128K contexts is no longer small; below a few thousand positions the
// two agree to float32 rounding of cos/sin.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dsv3 {

class RopeTable {
 public:
  RopeTable() = default;
  explicit RopeTable(const Config& c)
      : inv_freq_(c.RopeInvFreq()), scale_(static_cast<float>(c.RopeCosSinScale())) {}

  int64_t half() const { return static_cast<int64_t>(inv_freq_.size()); }
  // cos [dr/2], sin [dr/2] at `pos`, each times the YaRN factor.
  void Fill(int64_t pos, float* cos, float* sin) const {
    for (int64_t j = 0; j < half(); ++j) {
      const double angle = static_cast<double>(pos) * inv_freq_[j];
      cos[j] = static_cast<float>(std::cos(angle)) * scale_;
      sin[j] = static_cast<float>(std::sin(angle)) * scale_;
    }
  }

 private:
  std::vector<double> inv_freq_;  // [dr/2]
  float scale_ = 1.0f;
};

}  // namespace dsv3
