// Float32 master parameters bound through BindWeights; see params.h.
#include "train/params.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>  // std::bad_alloc
#include <unordered_map>

#include "core/parallel.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "train/rng.h"

namespace dsv3::train {

namespace {

// Binds matrices into a contiguous arena (first pass: count only) and sizes
// vectors; records each tensor's float pointer.
class ArenaBinder : public TensorBinder {
 public:
  ArenaBinder(float* arena, std::vector<float*>* pointers) : arena_(arena), pointers_(pointers) {}
  int64_t used() const { return used_; }

  void Matrix(const std::string&, int64_t rows, int64_t cols, TensorRole, bool optional, Weight& out) override {
    if (optional) return;  // MTP copies of embed/head: shared with the main model
    if (arena_) {
      out = Weight();
      out.dtype = DType::kF32;
      out.rows = rows, out.cols = cols;
      out.data = arena_ + used_;
      pointers_->push_back(arena_ + used_);
    }
    used_ += rows * cols;
  }
  void Vector(const std::string&, int64_t n, TensorRole, std::vector<float>& out) override {
    out.assign(n, 0.0f);
    if (arena_) pointers_->push_back(out.data());
  }

 private:
  float* arena_;
  std::vector<float*>* pointers_;
  int64_t used_ = 0;
};

// N of "model.layers.N.*"; -1 for the embedding, final norm and head.
int64_t LayerOf(const std::string& name) {
  static const std::string kPrefix = "model.layers.";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  return std::strtoll(name.c_str() + kPrefix.size(), nullptr, 10);
}

}  // namespace

void LazyFloats::Allocate(int64_t n) {
  bytes_ = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<float*>(p);
}

LazyFloats::~LazyFloats() {
  if (data_) munmap(data_, bytes_);
}

void LazyFloats::Release(float* p, int64_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = reinterpret_cast<uintptr_t>(p + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

TrainParams::TrainParams(const Config& config) : config_(config) {
  ArenaBinder counter(nullptr, nullptr);
  ModelWeights scratch;
  BindWeights(config_, scratch, counter);
  arena_size_ = counter.used();
  values_.Allocate(arena_size_);
  std::vector<float*> value_ptrs;
  ArenaBinder vb(values_.data(), &value_ptrs);
  BindWeights(config_, w_, vb);
  size_t i = 0;
  for (const TensorDesc& t : ListTensors(config_)) {
    if (t.optional) continue;
    ParamTensor p;
    p.name = t.name, p.shape = t.shape, p.role = t.role;
    p.numel = 1;
    for (int64_t s : t.shape) p.numel *= s;
    p.value = value_ptrs[i++];
    p.decay = t.role != TensorRole::kNorm && t.role != TensorRole::kRouterBias;
    tensors_.push_back(std::move(p));
  }
  AddGradSlot();
  for (size_t j = 0; j < tensors_.size(); ++j) tensors_[j].grad = grad_sets_[0]->ptrs[j];
  BuildChunks();
}

void TrainParams::BuildChunks() {
  constexpr int64_t kChunk = 1 << 16;
  chunks_.clear();
  for (size_t j = 0; j < tensors_.size(); ++j) {
    if (!tensors_[j].grad || tensors_[j].frozen) continue;
    for (int64_t b = 0; b < tensors_[j].numel; b += kChunk)
      chunks_.push_back({static_cast<int32_t>(j), b, std::min(tensors_[j].numel, b + kChunk)});
  }
}

void TrainParams::FreezeAllButMtp() {
  frozen_layers_ = config_.num_hidden_layers;
  for (ParamTensor& p : tensors_) p.frozen = LayerOf(p.name) < frozen_layers_;  // embedding, norm, head: -1
  BuildChunks();
}

std::unique_ptr<TrainParams::GradSet> TrainParams::NewGradSet() const {
  auto set = std::make_unique<GradSet>();
  set->arena.Allocate(arena_size_);
  ArenaBinder gb(set->arena.data(), &set->ptrs);
  BindWeights(config_, set->g, gb);
  for (size_t j = 0; j < tensors_.size(); ++j)  // the router bias is not trained by gradient
    if (tensors_[j].role == TensorRole::kRouterBias) set->ptrs[j] = nullptr;
  return set;
}

int TrainParams::AddGradSlot() {
  grad_sets_.push_back(NewGradSet());
  return static_cast<int>(grad_sets_.size()) - 1;
}

void TrainParams::AddGrads(int from, int to) {
  const GradSet& a = *grad_sets_[from];
  GradSet& b = *grad_sets_[to];
  ParallelFor(static_cast<int64_t>(chunks_.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const ParamChunk& ch = chunks_[c];
      if (tensors_[ch.tensor].elsewhere) continue;
      const float* src = a.ptrs[ch.tensor];
      float* dst = b.ptrs[ch.tensor];
      for (int64_t i = ch.begin; i < ch.end; ++i) dst[i] += src[i];
    }
  });
}

std::vector<int32_t> TrainParams::RoutedExpertOfTensors() const {
  // By data pointer (tensors are bound in the arena), one lookup per matrix:
  // linear in tensors, where a scan per expert would be tensors x experts.
  std::unordered_map<const void*, size_t> index;
  for (size_t i = 0; i < tensors_.size(); ++i) index[tensors_[i].value] = i;
  std::vector<int32_t> expert(tensors_.size(), -1);
  for (const LayerWeights& lw : w_.layers) {
    if (!lw.is_moe) continue;
    for (size_t e = 0; e < lw.moe.experts.size(); ++e) {
      const MlpWeights& m = lw.moe.experts[e];
      for (const Weight* x : {&m.gate_proj, &m.up_proj, &m.down_proj})
        if (auto it = index.find(x->data); it != index.end()) expert[it->second] = static_cast<int32_t>(e);
    }
  }
  return expert;
}

void TrainParams::SetElsewhere(const std::vector<uint8_t>& elsewhere) {
  for (size_t i = 0; i < tensors_.size(); ++i) tensors_[i].elsewhere = elsewhere[i] != 0;
}

void TrainParams::ReleaseElsewhere() {
  for (ParamTensor& p : tensors_)
    if (p.elsewhere) LazyFloats::Release(p.value, p.numel);
}

const ParamTensor* TrainParams::Find(const std::string& name) const {
  for (const ParamTensor& p : tensors_)
    if (p.name == name) return &p;
  return nullptr;
}

int64_t TrainParams::NumParams() const {
  int64_t n = 0;
  for (const ParamTensor& p : tensors_)
    if (p.grad && !p.frozen) n += p.numel;
  return n;
}

void TrainParams::InitNormal(uint64_t seed, float std) {
  for (ParamTensor& p : tensors_) {
    if (p.elsewhere) continue;
    if (p.role == TensorRole::kNorm) {
      std::fill(p.value, p.value + p.numel, 1.0f);
    } else if (p.role == TensorRole::kRouterBias) {
      std::fill(p.value, p.value + p.numel, 0.0f);
    } else {
      Rng rng(seed, HashString(p.name));
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] = static_cast<float>(rng.Normal() * std);
    }
  }
}

void TrainParams::ZeroGrads(int slot) {
  const GradSet& set = *grad_sets_[slot];
  for (size_t j = 0; j < tensors_.size(); ++j)
    if (set.ptrs[j] && !tensors_[j].elsewhere) std::memset(set.ptrs[j], 0, tensors_[j].numel * sizeof(float));
}

Status TrainParams::LoadCheckpoint(const std::string& dir, bool mtp_optional, int64_t* missing) {
  DSV3_ASSIGN_OR_RETURN(auto store, TensorStore::Open(dir));
  const auto q = config_.quantization.value_or(QuantizationConfig{});
  if (missing) *missing = 0;
  for (ParamTensor& p : tensors_) {
    if (p.elsewhere) continue;
    const TensorInfo* t = store->Find(p.name);
    if (!t && mtp_optional && LayerOf(p.name) >= config_.num_hidden_layers) {
      if (missing) ++*missing;
      continue;
    }
    if (!t) return Status::Error("tensor '" + p.name + "' is missing from " + store->path());
    if (t->shape != p.shape) {
      TensorInfo want;
      want.shape = p.shape;
      return Status::Error(t->file + ": tensor '" + p.name + "' has shape " + t->ShapeString() +
                           " but the model config implies " + want.ShapeString());
    }
    Weight w;  // decode through the inference op so every stored dtype is covered
    w.dtype = t->dtype;
    w.rows = p.shape.size() == 2 ? p.shape[0] : 1;
    w.cols = p.shape.back();
    w.data = t->data;
    if (t->dtype == DType::kF8E4M3) {
      const TensorInfo* s = store->Find(p.name + "_scale_inv");
      w.block_rows = q.block_rows, w.block_cols = q.block_cols;
      w.scale_cols = (w.cols + q.block_cols - 1) / q.block_cols;
      const int64_t scale_rows = (w.rows + q.block_rows - 1) / q.block_rows;
      if (!s || s->dtype != DType::kF32 || s->shape != std::vector<int64_t>{scale_rows, w.scale_cols})
        return Status::Error(t->file + ": FP8 tensor '" + p.name + "' lacks a matching F32 '" + p.name +
                             "_scale_inv'");
      w.scale_inv = reinterpret_cast<const float*>(s->data);
    } else if (t->dtype != DType::kF32 && t->dtype != DType::kBF16 && t->dtype != DType::kF16) {
      return Status::Error(t->file + ": tensor '" + p.name + "' has dtype " + std::string(DTypeName(t->dtype)) +
                           "; expected F32, BF16, F16 or F8_E4M3");
    }
    for (int64_t r = 0; r < w.rows; ++r) ops::DecodeRow(w, r, p.value + r * w.cols);
  }
  return Status::Ok();
}

}  // namespace dsv3::train
