// The trainable parameters: one float32 master tensor (and one gradient) for
// every tensor BindWeights lists, so names, shapes and roles are exactly the
// checkpoint's. `w()` and `g()` are ModelWeights views whose matrices point at
// the float32 values / gradients, so training code addresses a tensor the way
// inference does (w().layers[l].attn.kv_b_proj). The MTP layers' optional
// copies of the embedding and head are not separate parameters: as in the
// paper, MTP shares the main model's embedding and output head.
#pragma once

#include <cstdint>
#include <memory>
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
  bool frozen = false;    // kept as loaded: no update, not in chunks() (--trainable mtp)
  bool elsewhere = false; // another rank holds it (expert parallelism): never initialised, loaded or zeroed here
};

// Zero-filled float memory whose pages become resident only when written
// (anonymous mmap), so the tensors of experts another rank holds cost no
// memory here.
class LazyFloats {
 public:
  LazyFloats() = default;
  ~LazyFloats();
  void Allocate(int64_t n);  // once
  LazyFloats(const LazyFloats&) = delete;
  LazyFloats& operator=(const LazyFloats&) = delete;
  float* data() const { return data_; }
  // Returns the whole pages inside [p, p + n) to the kernel (they read as zero again).
  static void Release(float* p, int64_t n);

 private:
  float* data_ = nullptr;
  size_t bytes_ = 0;
};

// Mutable float32 data of a matrix bound by TrainParams.
inline float* Mut(const Weight& w) { return const_cast<float*>(static_cast<const float*>(w.data)); }
inline const float* Data(const Weight& w) { return static_cast<const float*>(w.data); }

// A piece of one trainable tensor: elements [begin, end) of tensors()[tensor].
struct ParamChunk {
  int32_t tensor;
  int64_t begin, end;
};

class TrainParams {
 public:
  explicit TrainParams(const Config& config);
  TrainParams(const TrainParams&) = delete;
  TrainParams& operator=(const TrainParams&) = delete;

  const Config& config() const { return config_; }
  const ModelWeights& w() const { return w_; }
  // Gradient set `slot` (0: the one ParamTensor::grad and the optimizer use;
  // more slots let micro-batches run in parallel, see AddGradSlot).
  ModelWeights& g(int slot = 0) { return grad_sets_[slot]->g; }
  const ModelWeights& g(int slot = 0) const { return grad_sets_[slot]->g; }
  std::vector<ParamTensor>& tensors() { return tensors_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor* Find(const std::string& name) const;
  // Every trainable element, in fixed chunks of at most 64K: elementwise
  // passes (optimizer, gradient sums) run as one parallel loop over these,
  // and reductions add per-chunk partial sums in order (thread-independent).
  const std::vector<ParamChunk>& chunks() const { return chunks_; }
  int64_t NumParams() const;  // trainable elements
  // Freezes every tensor outside the MTP layers (model.layers.{L..}): the
  // main model, its embedding and head keep their values bit for bit.
  void FreezeAllButMtp();
  // Whether layer l's tensors (its router bias too) are frozen.
  bool LayerFrozen(int64_t l) const { return l < frozen_layers_; }

  // Matrices ~ N(0, std^2) from a per-tensor stream of `seed` (independent of
  // tensor order), norms 1, router biases 0.
  void InitNormal(uint64_t seed, float std);
  void ZeroGrads(int slot = 0);
  // Adds another gradient set; returns its slot.
  int AddGradSlot();
  int num_grad_slots() const { return static_cast<int>(grad_sets_.size()); }
  // Tensor i's gradient in set `slot` (null: no gradient).
  float* GradPtr(int slot, size_t i) { return grad_sets_[slot]->ptrs[i]; }
  // grads(to) += grads(from), elementwise (the same result on any thread count).
  void AddGrads(int from, int to);
  // Copies every tensor from a checkpoint (config.json + safetensors in any
  // dtype the engine loads, FP8 dequantized). Shapes must match this config;
  // errors name the tensor and the file. With `mtp_optional`, MTP-layer
  // tensors the checkpoint lacks keep their values (a model without an MTP
  // layer can be given one); *missing counts them.
  Status LoadCheckpoint(const std::string& dir, bool mtp_optional = false, int64_t* missing = nullptr);

  // [tensors] the routed expert a tensor belongs to (gate/up/down of
  // experts.E of a MoE layer), -1 for every other tensor.
  std::vector<int32_t> RoutedExpertOfTensors() const;
  // Marks the tensors another rank holds (expert parallelism): InitNormal,
  // LoadCheckpoint, ZeroGrads and AddGrads leave them alone, so their pages
  // are never touched here.
  void SetElsewhere(const std::vector<uint8_t>& elsewhere);
  // Gives back the memory of those tensors' values (rank 0 after writing a
  // checkpoint, for which it gathered them).
  void ReleaseElsewhere();

  // Layer l's router correction bias [E] (null when the layer has none).
  float* RouterBias(int64_t l) {
    auto& b = w_.layers[l].moe.e_score_correction_bias;
    return b.empty() ? nullptr : b.data();
  }

  // The head the model multiplies by (lm_head, or the embedding when tied).
  const Weight& head() const { return config_.tie_word_embeddings ? w_.embed_tokens : w_.lm_head; }
  const Weight& head_grad(int slot = 0) const {
    return config_.tie_word_embeddings ? g(slot).embed_tokens : g(slot).lm_head;
  }

 private:
  struct GradSet {
    LazyFloats arena;           // all matrix gradients, contiguous
    ModelWeights g;             // views of them (vectors owned here)
    std::vector<float*> ptrs;   // per tensor, in tensors_ order (null: no gradient)
  };
  std::unique_ptr<GradSet> NewGradSet() const;
  void BuildChunks();  // chunks_ over the tensors with a gradient that are not frozen

  Config config_;
  int64_t frozen_layers_ = 0;  // layers [0, frozen_layers_) are frozen
  int64_t arena_size_ = 0;
  LazyFloats values_;          // all matrices, contiguous
  ModelWeights w_;
  std::vector<std::unique_ptr<GradSet>> grad_sets_;
  std::vector<ParamTensor> tensors_;
  std::vector<ParamChunk> chunks_;
};

}  // namespace dsv3::train
