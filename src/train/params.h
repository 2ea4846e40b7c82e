// The trainable parameters: one float32 master tensor (and one gradient) for
// every tensor BindWeights lists, so names, shapes and roles are exactly the
// checkpoint's. `w()` and `g()` are ModelWeights views whose matrices point at
// the float32 values / gradients, so training code addresses a tensor the way
// inference does (w().layers[l].attn.kv_b_proj). The MTP layers' optional
// copies of the embedding and head are not separate parameters: as in the
// paper, MTP shares the main model's embedding and output head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3::train {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role;
  int64_t numel = 0;
  float* value = nullptr;
  float* grad = nullptr;  // null for tensors not trained by gradient (router bias)
  bool decay = false;     // AdamW weight decay applies (not norms, not biases)
};

// Mutable float32 data of a matrix bound by TrainParams.
inline float* Mut(const Weight& w) { return const_cast<float*>(static_cast<const float*>(w.data)); }
inline const float* Data(const Weight& w) { return static_cast<const float*>(w.data); }

class TrainParams {
 public:
  explicit TrainParams(const Config& config);
  TrainParams(const TrainParams&) = delete;
  TrainParams& operator=(const TrainParams&) = delete;

  const Config& config() const { return config_; }
  const ModelWeights& w() const { return w_; }
  ModelWeights& g() { return g_; }
  const ModelWeights& g() const { return g_; }
  std::vector<ParamTensor>& tensors() { return tensors_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor* Find(const std::string& name) const;
  int64_t NumParams() const;  // trainable elements

  // Matrices ~ N(0, std^2) from a per-tensor stream of `seed` (independent of
  // tensor order), norms 1, router biases 0.
  void InitNormal(uint64_t seed, float std);
  void ZeroGrads();
  // Copies every tensor from a checkpoint (config.json + safetensors in any
  // dtype the engine loads, FP8 dequantized). Shapes must match this config;
  // errors name the tensor and the file.
  Status LoadCheckpoint(const std::string& dir);

  // Layer l's router correction bias [E] (null when the layer has none).
  float* RouterBias(int64_t l) {
    auto& b = w_.layers[l].moe.e_score_correction_bias;
    return b.empty() ? nullptr : b.data();
  }

  // The head the model multiplies by (lm_head, or the embedding when tied).
  const Weight& head() const { return config_.tie_word_embeddings ? w_.embed_tokens : w_.lm_head; }
  const Weight& head_grad() const { return config_.tie_word_embeddings ? g_.embed_tokens : g_.lm_head; }

 private:
  Config config_;
  std::vector<float> values_, grads_;  // all matrices, contiguous
  ModelWeights w_, g_;
  std::vector<ParamTensor> tensors_;
};

}  // namespace dsv3::train
