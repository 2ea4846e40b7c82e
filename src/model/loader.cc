// Model::Load: config.json + safetensors -> typed weights pointing into the
// mapped files. Every tensor's presence, shape and dtype is checked against
// the config; FP8 weights must come with a matching `_scale_inv` grid.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/parallel.h"
#include "core/q4k_r4.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "model/packed_int.h"

namespace dsv3 {

namespace {

class StoreBinder : public TensorBinder {
 public:
  // Matrices not aligned to their element size (a safetensors header need
  // not be padded; MLX writes such files) are copied into `owned`; with
  // `align64`, so is every matrix not on a 64-byte boundary.
  // Routed experts e with resident[e] == 0 are checked but left unbound:
  // their pages are never touched (expert parallelism).
  StoreBinder(const TensorStore& store, const Config& config, std::vector<AlignedBuffer<uint8_t>>* owned,
              bool align64, const std::vector<uint8_t>& resident)
      : store_(store), config_(config), owned_(owned), align64_(align64), resident_(resident) {}

  Status status() const { return status_; }
  const std::set<std::string>& used() const { return used_; }
  uint64_t bytes() const { return bytes_; }

  void Matrix(const std::string& name, int64_t rows, int64_t cols, TensorRole role, bool optional,
              Weight& out) override {
    if (!status_.ok()) return;
    const TensorInfo* t = store_.Find(name);
    if (!t && config_.packed_int && BindPacked(name, rows, cols, out)) return;
    if (!t) {
      if (!optional) Fail("tensor '" + name + "' is missing from " + store_.path());
      return;
    }
    if (!CheckShape(*t, {rows, cols})) return;
    out = Weight();
    out.dtype = t->dtype;
    out.rows = rows;
    out.cols = cols;
    out.data = t->data;
    const uintptr_t at = reinterpret_cast<uintptr_t>(t->data);
    const bool copy = at % DTypeSize(t->dtype) != 0 || (align64_ && at % 64 != 0);
    switch (t->dtype) {
      case DType::kF32: case DType::kBF16: case DType::kF16: break;
      case DType::kF8E4M3: BindScale(name, out); break;
      default:
        Fail(t->file + ": tensor '" + name + "' has dtype " + std::string(DTypeName(t->dtype)) +
             "; expected F32, BF16, F16 or F8_E4M3");
    }
    Use(*t);
    if (Foreign(name)) {
      out = Weight();
      return;
    }
    if (copy && status_.ok()) {
      out.data = Copy(*t);
      realigned_bytes_ += t->nbytes;
    }
  }
  uint64_t realigned_bytes() const { return realigned_bytes_; }

  void Vector(const std::string& name, int64_t n, TensorRole role, std::vector<float>& out) override {
    if (!status_.ok()) return;
    const TensorInfo* t = store_.Find(name);
    if (!t) return Fail("tensor '" + name + "' is missing from " + store_.path());
    if (!CheckShape(*t, {n})) return;
    out.resize(n);
    const uint8_t* p = t->data;
    for (int64_t i = 0; i < n; ++i) {
      switch (t->dtype) {
        case DType::kF32: { float v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
        case DType::kBF16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); out[i] = Bf16ToF32(v); break; }
        case DType::kF16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); out[i] = F16ToF32(v); break; }
        default:
          return Fail(t->file + ": tensor '" + name + "' has dtype " + std::string(DTypeName(t->dtype)) +
                      "; expected F32, BF16 or F16");
      }
    }
    Use(*t);
  }

 private:
  // A routed expert's tensor ("...mlp.experts.E....") held by another rank?
  bool Foreign(const std::string& name) const {
    if (resident_.empty()) return false;
    const std::string key = ".mlp.experts.";
    const size_t at = name.find(key);
    if (at == std::string::npos) return false;
    const int64_t e = std::atoll(name.c_str() + at + key.size());
    return e < static_cast<int64_t>(resident_.size()) && !resident_[e];
  }
  const uint8_t* Copy(const TensorInfo& t) {
    owned_->emplace_back(t.nbytes);
    std::memcpy(owned_->back().data(), t.data, t.nbytes);
    return owned_->back().data();
  }
  void Fail(const std::string& message) {
    if (status_.ok()) status_ = Status::Error(message);
  }
  void Use(const TensorInfo& t) {
    used_.insert(t.name);
    bytes_ += t.nbytes;
  }
  bool CheckShape(const TensorInfo& t, const std::vector<int64_t>& shape) {
    if (t.shape == shape) return true;
    TensorInfo expect;
    expect.shape = shape;
    Fail(t.file + ": tensor '" + t.name + "' has shape " + t.ShapeString() + " but config.json implies " +
         expect.ShapeString());
    return false;
  }
  // compressed-tensors (config.packed_int): "<name>_packed" and
  // "<name>_scale" (and optionally "<name>_shape") instead of <name>,
  // repacked into Q4_0 / Q8_0 blocks the block kernels run (packed_int.h).
  // False when there is no "<name>_packed" (then <name> is missing).
  bool BindPacked(const std::string& name, int64_t rows, int64_t cols, Weight& out) {
    const TensorInfo* p = store_.Find(name + "_packed");
    if (!p) return false;
    out = Weight();
    const Status st = CheckPacked(*p, name, rows, cols);
    if (!st.ok()) {
      Fail(st.message());
      return true;
    }
    const PackedIntConfig& q = *config_.packed_int;
    const TensorInfo* s = store_.Find(name + "_scale");
    if (const TensorInfo* shape = store_.Find(name + "_shape")) Use(*shape);  // config.json already fixes it
    Use(*p), Use(*s);
    if (Foreign(name)) return true;
    Weight w;
    w.dtype = q.bits == 8 ? DType::kQ8_0 : DType::kQ4_0;
    w.rows = rows, w.cols = cols;
    owned_->emplace_back(static_cast<size_t>(w.nbytes()));
    w.data = owned_->back().data();
    if (Status r = RepackPackedInt(*p, *s, q.bits, q.group_size, rows, cols, owned_->back().data()); !r.ok())
      return Fail(r.message()), true;
    out = w;
    return true;
  }
  Status CheckPacked(const TensorInfo& p, const std::string& name, int64_t rows, int64_t cols) const {
    const PackedIntConfig& q = *config_.packed_int;
    const TensorInfo* s = store_.Find(name + "_scale");
    if (!s) return Status::Error("packed tensor '" + p.name + "' has no scale tensor '" + name + "_scale' in " + store_.path());
    if (p.dtype != DType::kI32)
      return Status::Error(p.file + ": tensor '" + p.name + "' must be I32, not " + std::string(DTypeName(p.dtype)));
    if (s->dtype != DType::kF32 && s->dtype != DType::kBF16 && s->dtype != DType::kF16)
      return Status::Error(s->file + ": scale tensor '" + s->name + "' must be F32, BF16 or F16");
    if (cols % q.group_size != 0)
      return Status::Error(p.file + ": tensor '" + p.name + "': " + std::to_string(cols) +
                           " columns are not a multiple of quantization_config's group_size " +
                           std::to_string(q.group_size));
    TensorInfo want;
    want.shape = {rows, cols * q.bits / 32};
    if (p.shape != want.shape)
      return Status::Error(p.file + ": tensor '" + p.name + "' has shape " + p.ShapeString() + " but config.json implies " + want.ShapeString());
    want.shape = {rows, cols / q.group_size};
    if (s->shape != want.shape)
      return Status::Error(s->file + ": tensor '" + s->name + "' has shape " + s->ShapeString() + " but config.json implies " + want.ShapeString());
    return Status::Ok();
  }

  void BindScale(const std::string& name, Weight& w) {
    const std::string scale_name = name + "_scale_inv";
    const TensorInfo* s = store_.Find(scale_name);
    if (!s) return Fail("FP8 tensor '" + name + "' has no scale tensor '" + scale_name + "' in " + store_.path());
    const auto q = config_.quantization.value_or(QuantizationConfig{});
    w.block_rows = q.block_rows;
    w.block_cols = q.block_cols;
    w.scale_cols = (w.cols + q.block_cols - 1) / q.block_cols;
    const std::vector<int64_t> shape = {(w.rows + q.block_rows - 1) / q.block_rows, w.scale_cols};
    if (s->dtype != DType::kF32)
      return Fail(s->file + ": scale tensor '" + scale_name + "' must be F32, not " + std::string(DTypeName(s->dtype)));
    if (!CheckShape(*s, shape)) return;
    const bool aligned = reinterpret_cast<uintptr_t>(s->data) % alignof(float) == 0;
    w.scale_inv = reinterpret_cast<const float*>(aligned ? s->data : Copy(*s));
    Use(*s);
  }

  const TensorStore& store_;
  const Config& config_;
  std::vector<AlignedBuffer<uint8_t>>* owned_;
  bool align64_;
  const std::vector<uint8_t>& resident_;
  uint64_t realigned_bytes_ = 0;
  Status status_;
  std::set<std::string> used_;
  uint64_t bytes_ = 0;
};

// Visits the matrices already bound in a ModelWeights (BindWeights is the
// one tensor list) without touching the store.
class MatrixVisitor : public TensorBinder {
 public:
  explicit MatrixVisitor(std::function<void(TensorRole, Weight&)> fn) : fn_(std::move(fn)) {}
  void Matrix(const std::string&, int64_t, int64_t, TensorRole role, bool, Weight& out) override {
    if (!out.empty()) fn_(role, out);
  }
  void Vector(const std::string&, int64_t, TensorRole, std::vector<float>&) override {}

 private:
  std::function<void(TensorRole, Weight&)> fn_;
};

// FNV-1a, continued from h.
uint64_t Hash(uint64_t h, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
uint64_t Hash(uint64_t h, const std::string& s) { return Hash(h, s.data(), s.size() + 1); }

// config.json's bytes and the tensor index of a checkpoint directory.
uint64_t CheckpointHash(const std::string& dir, const TensorStore& store) {
  uint64_t h = 1469598103934665603ull;
  std::ifstream f(dir + "/config.json", std::ios::binary);
  h = Hash(h, std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()));
  for (const std::string& name : store.Names()) {
    const TensorInfo* t = store.Find(name);
    h = Hash(Hash(h, name), std::string(DTypeName(t->dtype)));
    h = Hash(Hash(h, t->shape.data(), t->shape.size() * sizeof(int64_t)), &t->nbytes, sizeof(t->nbytes));
  }
  return h;
}

}  // namespace

Status Model::PlaceExperts(const LoadOptions& options) {
  if (placement_ || !options.comm || !options.comm->distributed()) return Status::Ok();
  const int ranks = options.comm->size();
  const int64_t E = config_.n_routed_experts;
  auto placement = options.expert_map.empty() ? dist::ContiguousPlacement(E, ranks)
                                              : dist::ReadExpertMap(options.expert_map, E, ranks);
  if (!placement.ok()) return placement.status().WithContext(options.expert_map.empty() ? "expert parallelism"
                                                                                         : "--expert-map");
  placement_ = std::move(*placement);
  resident_ = placement_->Mask(options.comm->rank());
  return Status::Ok();
}

void Model::DropForeignExperts() {
  if (resident_.empty()) return;
  for (LayerWeights& layer : weights_.layers)
    if (layer.is_moe)
      for (size_t e = 0; e < layer.moe.experts.size(); ++e)
        if (!resident_[e]) layer.moe.experts[e] = MlpWeights();
}

namespace {
// Every matrix the model reads, once per distinct data pointer, with all the
// Weights that share it (the MTP layer's copy of the head, ...): a change of
// format must reach every one of them.
struct SharedMatrices {
  std::vector<const void*> order;
  std::unordered_map<const void*, std::vector<Weight*>> users;
  std::unordered_set<const void*> router;  // read by a router (float32 products)
};

// Sets every user of a repacked matrix to its new bytes and format.
void Rebind(std::vector<Weight*>& users, DType dtype, const uint8_t* data, const uint8_t* tile_exp) {
  for (Weight* u : users) {
    u->data = data;  // all start where the shared bytes start
    u->dtype = dtype, u->tile_exp = tile_exp;
  }
}
}  // namespace

uint64_t Model::CopyToMemory() {
  std::unordered_set<const void*> owned;
  for (const AlignedBuffer<uint8_t>& b : aligned_) owned.insert(b.data());
  SharedMatrices m;
  auto note = [&](TensorRole role, Weight& w) {
    if (role == TensorRole::kEmbedding || w.empty() || w.data == weights_.embed_tokens.data) return;
    if (!m.users.count(w.data)) m.order.push_back(w.data);
    m.users[w.data].push_back(&w);
    if (role == TensorRole::kRouter) m.router.insert(w.data);
  };
  MatrixVisitor visit(note);
  BindWeights(config_, weights_, visit);
  for (LayerWeights& layer : weights_.layers) {  // made at load, or GGUF attn_k_b / attn_v_b
    note(TensorRole::kLinear, layer.attn.w_uk_t);
    note(TensorRole::kLinear, layer.attn.w_uv);
  }
  uint64_t bytes = 0;
  for (const void* key : m.order) {
    std::vector<Weight*>& users = m.users[key];
    Weight* w = users.front();
    const bool views = std::any_of(users.begin(), users.end(), [](const Weight* u) { return u->row_offset != 0; });
    // --int8-fp8 (FP8) and --repack (Q8_0): the int8 tiles the VNNI kernels read.
    const bool wanted = (options_.int8_fp8 && w->dtype == DType::kF8E4M3) ||
                        (options_.repack && w->dtype == DType::kQ8_0);
    const bool tiles = wanted && !m.router.count(key) && !views && ops::CanStoreTiles(*w);
    if (owned.count(key)) {  // converted at load (FP8 head, W_uk^T): FP8 tiles in place
      if (!tiles || w->dtype != DType::kF8E4M3 || w->rows % 32 != 0) continue;
      aligned_.emplace_back(static_cast<size_t>(ops::StoredTilesExpBytes(*w)));
      uint8_t* data = static_cast<uint8_t*>(const_cast<void*>(key));
      const Weight packed = ops::StoreTiles(*w, data, aligned_.back().data());
      Rebind(users, packed.dtype, data, packed.tile_exp);
      continue;
    }
    bytes += CopyMatrix(*w, tiles, users);
  }
  return bytes;
}

// One matrix into the copied weights' huge pages: as int8 tiles, as Q4_K_R4
// (--repack) or byte for byte. Returns the bytes read.
uint64_t Model::CopyMatrix(const Weight& w, bool tiles, std::vector<Weight*>& users) {
  const uint8_t* src = static_cast<const uint8_t*>(w.data);
  const size_t n = static_cast<size_t>(w.nbytes());
  if (tiles) {
    uint8_t* dst = copied_.Allocate(static_cast<size_t>(ops::StoredTilesBytes(w) + ops::StoredTilesExpBytes(w)));
    const Weight packed = ops::StoreTiles(w, dst, dst + ops::StoredTilesBytes(w));
    ReleaseMappedPages(src, n);
    Rebind(users, packed.dtype, dst, packed.tile_exp);
    return n;
  }
  uint8_t* dst = copied_.Allocate(n);
  DType dtype = w.dtype;
  if (options_.repack && w.dtype == DType::kQ4_K && w.rows % kQ4KR4Rows == 0) {
    // Groups of 4 rows, each group's bytes where the same rows' were.
    const int64_t group_bytes = kQ4KR4Rows * w.bytes_per_row();
    ParallelFor(w.rows / kQ4KR4Rows, 64, [&](int64_t b, int64_t e) {
      RepackQ4KR4(src + b * group_bytes, (e - b) * kQ4KR4Rows, w.cols, dst + b * group_bytes);
    });
    dtype = DType::kQ4_KR4;
  } else {
    ParallelFor(static_cast<int64_t>(n), 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, e - b); });
  }
  ReleaseMappedPages(src, n);
  Rebind(users, dtype, dst, users.front()->tile_exp);
  return n;
}

Status Model::Finish(const LoadOptions& options) {
  options_ = options;
  if (options.repack && !options.load_to_memory)
    return Status::Error("--repack interleaves Q4_K and Q8_0 rows while copying the weights into memory; drop --mmap");
  mm_.bf16_activations = options.bf16_activations;
  mm_.exact_block_activations = options.exact_block_activations;  // issue 16
  mm_.int8_fp8 = options.int8_fp8;                                  // issue 18
  DSV3_RETURN_IF_ERROR(PlaceExperts(options));
  DropForeignExperts();
  const int64_t E = config_.n_routed_experts, K = config_.num_experts_per_tok, d = config_.hidden_size;
  if (placement_) {
    exchange_ = std::make_unique<dist::MpiExpertExchange>(*options.comm, *placement_, K, d, options.overlap_exchange);
  } else {
    exchange_ = std::make_unique<dist::LocalExpertExchange>(E, K, d);
  }
  if (fingerprint_ == 0) {  // not a checkpoint directory: the architecture's tensor list
    fingerprint_ = 1469598103934665603ull;
    for (const TensorDesc& t : ListTensors(config_))
      fingerprint_ = Hash(Hash(fingerprint_, t.name), t.shape.data(), t.shape.size() * sizeof(int64_t));
  }
  fingerprint_ = Hash(fingerprint_, weights_.norm.data(), weights_.norm.size() * sizeof(float));
  DSV3_RETURN_IF_ERROR(ConvertWeights());
  copied_bytes_ = options.load_to_memory ? CopyToMemory() : 0;
  const double held = resident_.empty() ? static_cast<double>(E) : std::count(resident_.begin(), resident_.end(), 1);
  weight_bytes_ = DecodeWeightBytes(held) +
                  static_cast<uint64_t>(weights_.embed_tokens.nbytes());
  return Status::Ok();
}

void Model::Prepare() {
  ModelWeights& w = weights_;
  if (config_.tie_word_embeddings) w.lm_head = w.embed_tokens;
  for (auto& layer : w.layers) {  // MTP layers may omit their copies of embed/head
    if (!layer.is_mtp) continue;
    if (layer.mtp.embed_tokens.empty()) layer.mtp.embed_tokens = w.embed_tokens;
    if (layer.mtp.shared_head_head.empty()) layer.mtp.shared_head_head = w.lm_head;
  }
  router_ = RouterParams::FromConfig(config_);
  rope_ = RopeTable(config_);
  softmax_scale_ = static_cast<float>(config_.SoftmaxScale());
}

Expected<std::unique_ptr<Model>> Model::Load(const std::string& dir, const LoadOptions& options) {
  if (IsGgufPath(dir)) return LoadGguf(dir, options);
  std::unique_ptr<Model> m(new Model());
  DSV3_ASSIGN_OR_RETURN(m->config_, LoadConfig(dir));
  DSV3_ASSIGN_OR_RETURN(m->store_, TensorStore::Open(dir));
  DSV3_RETURN_IF_ERROR(m->PlaceExperts(options));
  m->fingerprint_ = CheckpointHash(dir, *m->store_);
  StoreBinder binder(*m->store_, m->config_, &m->aligned_, options.align_weights, m->resident_);
  BindWeights(m->config_, m->weights_, binder);
  DSV3_RETURN_IF_ERROR(binder.status());
  m->Prepare();
  DSV3_RETURN_IF_ERROR(m->Finish(options));
  if (options.verbose) {
    const size_t unused = m->store_->Names().size() - binder.used().size();
    std::fprintf(stderr, "loaded %s: %zu tensors, %.1f MB in %zu file(s)%s%s\n", dir.c_str(),
                 binder.used().size(), binder.bytes() / 1e6, m->store_->num_files(),
                 unused ? (", " + std::to_string(unused) + " unused tensors ignored").c_str() : "",
                 binder.realigned_bytes()
                     ? (", " + std::to_string(binder.realigned_bytes() / 1000000) + " MB copied to 64-byte alignment").c_str()
                     : "");
    if (m->copied_bytes_)
      std::fprintf(stderr, "  %.1f MB of matrices copied to huge-page memory\n", m->copied_bytes_ / 1e6);
  }
  return m;
}

}  // namespace dsv3
