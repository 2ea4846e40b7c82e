// Model::LoadGguf: a llama.cpp "deepseek2" GGUF file -> Config (from its
// metadata) and typed weights pointing into the mapped file. Every tensor's
// presence, ggml shape and type is checked. Stacked expert tensors
// [E, rows, cols] become per-expert Weight views without copying. The one
// tensor that must be rebuilt is kv_b_proj when the file holds llama.cpp's
// split MLA layout (attn_k_b = W_UK transposed per head, attn_v_b): it is
// reassembled once at load, in the source dtype for F32/F16/BF16 (a pure
// byte permutation, so numerics are unchanged) and in F32 for the block
// types (Q8_0, Q4_K, ...: decoded exactly as ggml decodes them; the model
// then multiplies by the same floats ggml would); it serves the decompressed
// prefill, while the absorbed decode multiplies by attn_k_b (as W_uk^T) and
// attn_v_b as stored. Every other block-type tensor stays in the mapping as
// stored.
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "model/gguf_model.h"
#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

namespace {

bool MatrixType(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || IsBlockType(t); }

class GgufBinder : public TensorBinder {
 public:
  GgufBinder(const GgufFile& f, const Config& c, std::vector<std::vector<uint8_t>>& owned)
      : f_(f), c_(c), owned_(owned) {}
  Status status() const { return status_; }
  const std::set<std::string>& used() const { return used_; }
  uint64_t bytes() const { return bytes_; }
  // Each split layer's attn_k_b and attn_v_b as its W_uk^T and W_uv.
  void BindSplitMla(std::vector<LayerWeights>& layers) const;

  void Matrix(const std::string& name, int64_t rows, int64_t cols, TensorRole, bool optional, Weight& out) override {
    if (!status_.ok()) return;
    const GgufTarget t = MapTensorToGguf(name, c_);
    if (t.kind == GgufTarget::Kind::kNone) return Fail("tensor '" + name + "' has no GGUF name");
    if (t.kind == GgufTarget::Kind::kKvB && !f_.FindTensor(t.name)) return BindSplitKvB(t.layer, rows, cols, out);
    const GgufTensorInfo* g = f_.FindTensor(t.name);
    if (!g) {
      if (!optional) Fail("tensor '" + t.name + "' (" + name + ") is missing from " + f_.path());
      return;
    }
    if (!CheckType(*g)) return;
    std::vector<int64_t> ne = {cols, rows};
    if (t.kind == GgufTarget::Kind::kExpertSlice) ne.push_back(c_.n_routed_experts);
    if (!CheckNe(*g, ne)) return;
    out = Weight();
    out.dtype = *g->dtype;
    out.rows = rows;
    out.cols = cols;
    const int64_t expert = t.kind == GgufTarget::Kind::kExpertSlice ? t.expert : 0;
    out.data = g->data + expert * rows * out.bytes_per_row();  // a view: nothing copied
    Use(*g);
  }

  void Vector(const std::string& name, int64_t n, TensorRole, std::vector<float>& out) override {
    if (!status_.ok()) return;
    const GgufTarget t = MapTensorToGguf(name, c_);
    const GgufTensorInfo* g = t.kind == GgufTarget::Kind::kPlain ? f_.FindTensor(t.name) : nullptr;
    if (!g) return Fail("tensor '" + t.name + "' (" + name + ") is missing from " + f_.path());
    if (!CheckNe(*g, {n})) return;
    if (!g->dtype || (*g->dtype != DType::kF32 && *g->dtype != DType::kF16 && *g->dtype != DType::kBF16))
      return Fail(f_.path() + ": tensor '" + g->name + "' is " + GgmlTypeName(g->ggml_type) + "; expected F32, F16 or BF16");
    out.resize(n);
    ops::DecodeRow(View(*g, 1, n), 0, out.data());
    Use(*g);
  }

 private:
  void Fail(const std::string& message) {
    if (status_.ok()) status_ = Status::Error(message);
  }
  void Use(const GgufTensorInfo& g) {
    if (used_.insert(g.name).second) bytes_ += g.nbytes;
  }
  static Weight View(const GgufTensorInfo& g, int64_t rows, int64_t cols) {
    Weight w;
    w.dtype = *g.dtype;
    w.rows = rows, w.cols = cols;
    w.data = g.data;
    return w;
  }
  bool CheckType(const GgufTensorInfo& g) {
    if (g.dtype && MatrixType(*g.dtype)) {
      if (IsBlockType(*g.dtype) || reinterpret_cast<uintptr_t>(g.data) % DTypeSize(*g.dtype) == 0) return true;
      Fail(f_.path() + ": tensor '" + g.name + "' data is not aligned to its element size");
      return false;
    }
    Fail(f_.path() + ": tensor '" + g.name + "' is " + GgmlTypeName(g.ggml_type) +
         "; dsv3 reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL and IQ4_XS GGUF weights");
    return false;
  }
  bool CheckNe(const GgufTensorInfo& g, const std::vector<int64_t>& ne) {
    if (g.ne == ne) return true;
    GgufTensorInfo expect;
    expect.ne = ne;
    Fail(f_.path() + ": tensor '" + g.name + "' has ggml shape " + g.NeString() + " but the metadata implies " +
         expect.NeString());
    return false;
  }
  void BindSplitKvB(int64_t layer, int64_t rows, int64_t cols, Weight& out);

  const GgufFile& f_;
  const Config& c_;
  std::vector<std::vector<uint8_t>>& owned_;
  Status status_;
  std::set<std::string> used_;
  uint64_t bytes_ = 0;
  std::map<int64_t, std::pair<Weight, Weight>> split_;  // layer -> (attn_k_b, attn_v_b) views
};

// kv_b_proj [H*(dn+dv), rc] from attn_k_b [H, rc, dn] and attn_v_b [H, dv, rc]:
// per head, dn rows of W_UK (k_b transposed) then dv rows of W_UV.
void GgufBinder::BindSplitKvB(int64_t layer, int64_t rows, int64_t cols, Weight& out) {
  const int64_t H = c_.num_attention_heads, dn = c_.qk_nope_head_dim, dv = c_.v_head_dim, rc = cols;
  const GgufTensorInfo* kb = f_.FindTensor(GgufKbName(layer));
  const GgufTensorInfo* vb = f_.FindTensor(GgufVbName(layer));
  if (!kb || !vb)
    return Fail(f_.path() + ": layer " + std::to_string(layer) + " has neither attn_kv_b nor both attn_k_b and attn_v_b");
  if (!CheckType(*kb) || !CheckType(*vb) || !CheckNe(*kb, {dn, rc, H}) || !CheckNe(*vb, {rc, dv, H})) return;
  const bool raw = *kb->dtype == *vb->dtype && !IsBlockType(*kb->dtype);  // permute bytes exactly
  const DType dtype = raw ? *kb->dtype : DType::kF32;
  const size_t es = DTypeSize(dtype);
  std::vector<uint8_t> buf(rows * cols * es);  // kv_b [H*(dn+dv), rc]
  std::vector<float> row(std::max(dn, rc));
  const Weight kw = View(*kb, H * rc, dn), vw = View(*vb, H * dv, rc);
  for (int64_t h = 0; h < H; ++h) {
    uint8_t* head = buf.data() + h * (dn + dv) * rc * es;
    for (int64_t c = 0; c < rc; ++c) {  // k_b row (h, c) holds W_UK[h][0..dn, c]
      if (raw) {
        const uint8_t* src = kb->data + (h * rc + c) * dn * es;
        for (int64_t n = 0; n < dn; ++n) std::memcpy(head + (n * rc + c) * es, src + n * es, es);
      } else {
        ops::DecodeRow(kw, h * rc + c, row.data());
        for (int64_t n = 0; n < dn; ++n) std::memcpy(head + (n * rc + c) * es, &row[n], es);
      }
    }
    for (int64_t r = 0; r < dv; ++r) {
      uint8_t* dst = head + (dn + r) * rc * es;
      if (raw) {
        std::memcpy(dst, vb->data + (h * dv + r) * rc * es, rc * es);
      } else {
        ops::DecodeRow(vw, h * dv + r, row.data());
        std::memcpy(dst, row.data(), rc * es);
      }
    }
  }
  owned_.push_back(std::move(buf));
  out = Weight();
  out.dtype = dtype;
  out.rows = rows, out.cols = cols;
  out.data = owned_.back().data();
  split_[layer] = {kw, vw};
  Use(*kb);
  Use(*vb);
}

// The absorbed decode multiplies by attn_k_b (W_uk^T [H*rc, dn]) and
// attn_v_b (W_uv [H*dv, rc]) as stored: the float32 kv_b_proj above is
// the decompressed prefill's; a Q4_K file read its W_uk and W_uv there in
// float32, 10% of its bytes per token, through the float kernel.
void GgufBinder::BindSplitMla(std::vector<LayerWeights>& layers) const {
  for (const auto& [layer, kv] : split_) {
    layers[layer].attn.w_uk_t = kv.first;
    layers[layer].attn.w_uv = kv.second;
  }
}

}  // namespace

Expected<std::unique_ptr<Model>> Model::LoadGguf(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  DSV3_ASSIGN_OR_RETURN(m->gguf_, GgufFile::Open(path));
  DSV3_ASSIGN_OR_RETURN(m->config_, ConfigFromGguf(*m->gguf_));  // validated, errors naming GGUF keys
  GgufBinder binder(*m->gguf_, m->config_, m->owned_);
  BindWeights(m->config_, m->weights_, binder);
  DSV3_RETURN_IF_ERROR(binder.status());
  binder.BindSplitMla(m->weights_.layers);
  m->Prepare();
  DSV3_RETURN_IF_ERROR(m->Finish(options));
  if (options.verbose) {
    const size_t unused = m->gguf_->tensors().size() - binder.used().size();
    std::fprintf(stderr, "loaded %s: GGUF v%u, %zu tensors, %.1f MB%s\n", path.c_str(), m->gguf_->version(),
                 binder.used().size(), binder.bytes() / 1e6,
                 unused ? (", " + std::to_string(unused) + " unused tensors ignored").c_str() : "");
  }
  return m;
}

}  // namespace dsv3
