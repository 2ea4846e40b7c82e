// AdamW for the float32 master weights (decoupled weight decay as in
// torch.optim.AdamW; no decay on norms and biases), gradient clipping by
// global norm, and the learning-rate schedule (linear warm-up, then cosine
// decay to a floor, or DeepSeek's multi-step decay). Moments are stored in
// float32 or, as in the DeepSeek-V3 recipe, in BF16 (rounded to nearest even
// after every update; the arithmetic itself is float32).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/params.h"

namespace dsv3::train {

enum class Schedule { kCosine, kStep };
bool ParseSchedule(const std::string& s, Schedule* out);

struct OptimizerOptions {
  double lr = 3e-3;             // peak learning rate
  double min_lr_ratio = 0.1;    // cosine floor as a fraction of lr
  int64_t warmup_steps = 100;
  Schedule schedule = Schedule::kCosine;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  double clip_norm = 1.0;       // 0: no clipping
  bool bf16_moments = false;
};

// Learning rate of step `step` (0-based) of a `total`-step run: linear
// warm-up to lr over warmup_steps, then cosine to lr * min_lr_ratio at the
// last step, or (kStep) lr until 80% of the run, lr * 0.316 until 90%, then
// lr * 0.1 (the DeepSeek LLM multi-step schedule).
double LearningRate(const OptimizerOptions& o, int64_t step, int64_t total);

// Elements [begin, end) of the flat moment space (every tensor with a
// gradient, in tensor order): a part of the optimizer state one rank owns
// under ZeRO-1 (data_parallel.h). end < 0: all of it.
struct MomentRange {
  int64_t begin = 0, end = -1;
};
using MomentRanges = std::vector<MomentRange>;  // ascending, disjoint

class AdamW {
 public:
  // Moments are allocated for `ranges` only (empty: all), stored one after
  // the other; Update touches only the chunks that start inside them
  // (ranges are chunk-aligned).
  AdamW(TrainParams& params, const OptimizerOptions& options, MomentRanges ranges = {});

  // Global L2 norm of all gradients (double, fixed summation order).
  double GradNorm() const;
  // parts [chunks]: each owned chunk's sum of squares (others 0). GradNorm
  // is sqrt of their sum in chunk order; a sharded run gathers them first.
  void GradNormParts(std::vector<double>* parts) const;
  bool Owns(const ParamChunk& c) const { return Local(offset_[c.tensor] + c.begin) >= 0; }
  int64_t FlatOffset(size_t tensor) const { return offset_[tensor]; }
  int64_t flat_size() const { return flat_size_; }
  const MomentRanges& ranges() const { return ranges_; }
  // Bytes of moments this object holds (its ranges).
  int64_t StateBytes() const;
  // The moments of its ranges as float32 [their total size] each, and the whole flat
  // state gathered from every rank for checkpoint writing (GetMoments then
  // reads it until ClearGathered).
  void LocalMoments(std::vector<float>* m, std::vector<float>* v) const;
  void SetGathered(std::vector<float> m, std::vector<float> v) { gm_ = std::move(m), gv_ = std::move(v); }
  void ClearGathered() { gm_ = {}, gv_ = {}; }
  // Scales gradients so their global norm is at most clip_norm (given the
  // norm GradNorm() returned), then applies update number `t` (1-based, for
  // bias correction) with learning rate `lr`.
  void Update(int64_t t, double lr, double grad_norm);

  // Moments of tensor i of params.tensors() (only trainable ones have any),
  // as float32, and back (for checkpoints; SetMoments keeps the range's part).
  void GetMoments(size_t i, std::vector<float>* m, std::vector<float>* v) const;
  void SetMoments(size_t i, const float* m, const float* v);
  const OptimizerOptions& options() const { return options_; }

 private:
  TrainParams& params_;
  OptimizerOptions options_;
  std::vector<int64_t> offset_;        // [tensors] start of each tensor's moments (flat)
  int64_t flat_size_ = 0;
  // Where flat element `flat` is stored, or -1 when not held here.
  int64_t Local(int64_t flat) const;

  MomentRanges ranges_;                // the moments held: flat [begin, end) each
  std::vector<int64_t> local_start_;   // [ranges] where each range's moments start
  std::vector<float> gm_, gv_;         // gathered flat moments while a checkpoint is written
  std::vector<float> m_, v_;           // float32 moments
  std::vector<uint16_t> m16_, v16_;    // or BF16 moments
  mutable std::vector<double> norm_parts_;  // [chunks] GradNorm partial sums
};

}  // namespace dsv3::train
