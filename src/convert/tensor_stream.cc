// Streaming row sources and encoders; see tensor_stream.h.
#include "convert/tensor_stream.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"  // GGUF quants (issue 16)
#include "core/mapped_file.h"
#include "core/parallel.h"
#include "ops/ops.h"

namespace dsv3 {

Expected<Weight> WeightFromTensor(const TensorInfo& t, const TensorInfo* scale, int64_t block_rows,
                                  int64_t block_cols) {
  Weight w;
  w.dtype = t.dtype;
  if (t.shape.size() == 1) {
    w.rows = 1, w.cols = t.shape[0];
  } else if (t.shape.size() == 2) {
    w.rows = t.shape[0], w.cols = t.shape[1];
  } else {
    return Status::Error(t.file + ": tensor '" + t.name + "' has shape " + t.ShapeString() + "; expected 1-D or 2-D");
  }
  w.data = t.data;
  switch (t.dtype) {
    case DType::kF32: case DType::kF16: case DType::kBF16: break;
    case DType::kF8E4M3: {
      if (!scale) return Status::Error(t.file + ": FP8 tensor '" + t.name + "' has no scale tensor '" + t.name + "_scale_inv'");
      const int64_t sr = (w.rows + block_rows - 1) / block_rows, sc = (w.cols + block_cols - 1) / block_cols;
      if (scale->dtype != DType::kF32 || scale->shape != std::vector<int64_t>{sr, sc})
        return Status::Error(scale->file + ": scale tensor '" + scale->name + "' must be F32 [" + std::to_string(sr) +
                             ", " + std::to_string(sc) + "] for " + t.ShapeString() + " in " +
                             std::to_string(block_rows) + "x" + std::to_string(block_cols) + " blocks (got " +
                             std::string(DTypeName(scale->dtype)) + " " + scale->ShapeString() + ")");
      w.scale_inv = reinterpret_cast<const float*>(scale->data);
      w.scale_cols = sc;
      w.block_rows = block_rows, w.block_cols = block_cols;
      break;
    }
    default:
      return Status::Error(t.file + ": tensor '" + t.name + "' has dtype " + std::string(DTypeName(t.dtype)) +
                           "; expected F32, F16, BF16 or F8_E4M3");
  }
  return w;  // misaligned data (an unpadded header) is copied row by row when decoded
}

namespace {

// Safetensors headers need not be padded (MLX writes them unpadded), so a
// tensor may start at any byte. ops::DecodeRow reads elements through typed
// pointers; a misaligned row is first copied into an aligned buffer, which
// keeps the converters streaming (one row of extra memory per thread).
bool Aligned(const void* p, size_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

void DecodeAnyRow(const Weight& w, int64_t r, float* out) {
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * w.bytes_per_row();
  if (Aligned(row, DTypeSize(w.dtype))) return ops::DecodeRow(w, r, out);
  thread_local std::vector<float> copy;  // float storage: aligned for every element size
  copy.resize((w.bytes_per_row() + sizeof(float) - 1) / sizeof(float));
  std::memcpy(copy.data(), row, w.bytes_per_row());
  Weight one = w.Rows(r, 1);  // keeps the absolute row for the FP8 scale lookup
  one.data = copy.data();
  ops::DecodeRow(one, 0, out);
}

// Points a misaligned FP8 scale grid at an aligned copy owned by `owned`
// (the grid is 1/16384 of the weight's size).
void AlignScales(Weight& w, std::vector<std::vector<float>>& owned) {
  if (w.dtype != DType::kF8E4M3 || !w.scale_inv || Aligned(w.scale_inv, sizeof(float))) return;
  const int64_t n = (w.row_offset + w.rows + w.block_rows - 1) / w.block_rows * w.scale_cols;
  owned.emplace_back(n);
  std::memcpy(owned.back().data(), w.scale_inv, n * sizeof(float));
  w.scale_inv = owned.back().data();
}

class StackedMatrixRows : public RowSource {
 public:
  explicit StackedMatrixRows(std::vector<Weight> parts) : parts_(std::move(parts)) {
    for (Weight& w : parts_) AlignScales(w, scales_);
  }
  int64_t rows() const override { return parts_[0].rows * static_cast<int64_t>(parts_.size()); }
  int64_t cols() const override { return parts_[0].cols; }
  void Rows(int64_t r0, int64_t n, float* out) override {
    ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = r0 + i;
        DecodeAnyRow(parts_[r / parts_[0].rows], r % parts_[0].rows, out + i * cols());
      }
    });
  }
  void Release(int64_t r0, int64_t n) override {
    for (int64_t r = r0; r < r0 + n;) {  // one range per part touched
      const Weight& w = parts_[r / parts_[0].rows];
      const int64_t local = r % w.rows, count = std::min(w.rows - local, r0 + n - r);
      ReleaseMappedPages(static_cast<const uint8_t*>(w.data) + local * w.bytes_per_row(), count * w.bytes_per_row());
      r += count;
    }
  }

 private:
  std::vector<Weight> parts_;
  std::vector<std::vector<float>> scales_;  // aligned copies of misaligned FP8 scale grids
};

// attn_k_b / attn_v_b rows from kv_b, decoding one head of kv_b at a time.
class MlaSplitRows : public RowSource {
 public:
  MlaSplitRows(const Weight& kv_b, int64_t heads, int64_t dn, int64_t dv, bool k)
      : kv_b_(kv_b), heads_(heads), dn_(dn), dv_(dv), k_(k), head_((dn + dv) * kv_b.cols) {
    AlignScales(kv_b_, scales_);
  }
  int64_t rows() const override { return heads_ * (k_ ? kv_b_.cols : dv_); }
  int64_t cols() const override { return k_ ? dn_ : kv_b_.cols; }
  void Rows(int64_t r0, int64_t n, float* out) override {
    const int64_t rc = kv_b_.cols, per_head = k_ ? rc : dv_;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t h = (r0 + i) / per_head, j = (r0 + i) % per_head;
      Load(h);  // head_ [dn+dv, rc]
      float* o = out + i * cols();
      if (k_) {
        for (int64_t d = 0; d < dn_; ++d) o[d] = head_[d * rc + j];  // W_UK[h][d, j]
      } else {
        std::memcpy(o, head_.data() + (dn_ + j) * rc, rc * sizeof(float));
      }
    }
  }
  void Release(int64_t, int64_t) override {}  // kv_b is small; released with the layer

 private:
  void Load(int64_t h) {
    if (h == loaded_) return;
    for (int64_t r = 0; r < dn_ + dv_; ++r) DecodeAnyRow(kv_b_, h * (dn_ + dv_) + r, head_.data() + r * kv_b_.cols);
    loaded_ = h;
  }
  Weight kv_b_;
  int64_t heads_, dn_, dv_;
  bool k_;
  std::vector<float> head_;
  std::vector<std::vector<float>> scales_;  // an aligned copy of a misaligned FP8 scale grid
  int64_t loaded_ = -1;
};

void EncodeRow(const float* x, int64_t n, DType dtype, uint8_t* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, x, n * 4); break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) { const uint16_t v = F32ToBf16(x[i]); std::memcpy(out + 2 * i, &v, 2); }
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) { const uint16_t v = F32ToF16(x[i]); std::memcpy(out + 2 * i, &v, 2); }
      break;
    default:
      // What llama-quantize writes (ggml's *_ref encoders but for IQ4_NL's scale search).
      if (IsBlockType(dtype)) QuantizeBlocks(dtype, x, n, out, QuantizeMode::kQuantizer);
      break;  // callers only pass the types above
  }
}

}  // namespace

std::unique_ptr<RowSource> MatrixRows(std::vector<Weight> parts) {
  return std::make_unique<StackedMatrixRows>(std::move(parts));
}
std::unique_ptr<RowSource> KbRows(const Weight& kv_b, int64_t heads, int64_t dn, int64_t dv) {
  return std::make_unique<MlaSplitRows>(kv_b, heads, dn, dv, true);
}
std::unique_ptr<RowSource> VbRows(const Weight& kv_b, int64_t heads, int64_t dn, int64_t dv) {
  return std::make_unique<MlaSplitRows>(kv_b, heads, dn, dv, false);
}

int64_t ChunkRows(int64_t buffer_bytes, int64_t bytes_per_row, int64_t align, int64_t total_rows) {
  int64_t n = std::max<int64_t>(1, buffer_bytes / std::max<int64_t>(1, bytes_per_row));
  n = std::max(align, n / align * align);
  return std::min(n, std::max<int64_t>(total_rows, 1));
}

Status StreamEncoded(RowSource& src, DType dtype, int64_t buffer_bytes, const ByteSink& sink, Progress& progress) {
  const int64_t cols = src.cols(), out_row = static_cast<int64_t>(DTypeBytes(dtype, cols));
  const int64_t chunk = ChunkRows(buffer_bytes, cols * 4 + out_row, 1, src.rows());
  std::vector<float> rows(chunk * cols);     // decoded chunk [chunk, cols]
  std::vector<uint8_t> bytes(chunk * out_row);  // encoded chunk
  for (int64_t r0 = 0; r0 < src.rows(); r0 += chunk) {
    const int64_t n = std::min(chunk, src.rows() - r0);
    src.Rows(r0, n, rows.data());
    ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) EncodeRow(rows.data() + i * cols, cols, dtype, bytes.data() + i * out_row);
    });
    DSV3_RETURN_IF_ERROR(sink(bytes.data(), n * out_row));
    src.Release(r0, n);
    progress.AddBytes(n * out_row);
  }
  return Status::Ok();
}

float Fp8BlockScale(float amax, bool ue8m0) {
  float s = std::max(amax / 448.0f, FLT_MIN);  // FLT_MIN: keeps x / s finite for tiny blocks
  if (ue8m0) {  // 2^ceil(log2 s), exactly: frexp gives s = m * 2^e, m in [0.5, 1)
    int e = 0;
    const float m = std::frexp(s, &e);
    s = std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
  }
  return s;
}

namespace {

// One block of x [*, cols]: rows [r0, r1) x cols [c0, c1) -> e4m3 codes in q.
void QuantizeBlock(const float* x, uint8_t* q, int64_t cols, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                   bool ue8m0, float* scale, std::atomic<int64_t>& bad) {
  float amax = 0.0f;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) {
      const float v = x[r * cols + c];
      if (!std::isfinite(v)) bad.store(r * cols + c);
      amax = std::max(amax, std::fabs(v));
    }
  const float s = Fp8BlockScale(amax, ue8m0);
  *scale = s;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) q[r * cols + c] = F32ToF8E4M3(x[r * cols + c] / s);
}

}  // namespace

Status StreamFp8(RowSource& src, int64_t br, int64_t bc, bool ue8m0, int64_t buffer_bytes, const std::string& name,
                 const ByteSink& sink, std::vector<float>& scales, Progress& progress) {
  const int64_t rows = src.rows(), cols = src.cols(), scols = (cols + bc - 1) / bc;
  scales.assign(((rows + br - 1) / br) * scols, 0.0f);
  const int64_t chunk = ChunkRows(buffer_bytes, cols * 5, br, rows);
  std::vector<float> x(chunk * cols);       // decoded chunk [chunk, cols]
  std::vector<uint8_t> q(chunk * cols);     // e4m3 codes
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    src.Rows(r0, n, x.data());
    const int64_t nrb = (n + br - 1) / br;
    std::atomic<int64_t> bad{-1};  // flat index of a non-finite value, if any
    ParallelFor(nrb * scols, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k)
        QuantizeBlock(x.data(), q.data(), cols, (k / scols) * br, std::min(n, (k / scols + 1) * br),
                      (k % scols) * bc, std::min(cols, (k % scols + 1) * bc), ue8m0,
                      &scales[((r0 / br) + k / scols) * scols + k % scols], bad);
    });
    if (const int64_t i = bad.load(); i >= 0)
      return Status::Error("tensor '" + name + "' has a non-finite value at [" + std::to_string(r0 + i / cols) +
                           ", " + std::to_string(i % cols) + "]; cannot quantize to FP8");
    DSV3_RETURN_IF_ERROR(sink(q.data(), n * cols));
    src.Release(r0, n);
    progress.AddBytes(n * cols);
  }
  return Status::Ok();
}

Status StreamRaw(const TensorInfo& t, int64_t buffer_bytes, const ByteSink& sink, Progress& progress) {
  const uint64_t piece = std::max<int64_t>(buffer_bytes, 1 << 16);
  for (uint64_t off = 0; off < t.nbytes; off += piece) {
    const uint64_t n = std::min(piece, t.nbytes - off);
    DSV3_RETURN_IF_ERROR(sink(t.data + off, n));
    ReleaseMappedPages(t.data + off, n);
    progress.AddBytes(n);
  }
  return Status::Ok();
}

}  // namespace dsv3
