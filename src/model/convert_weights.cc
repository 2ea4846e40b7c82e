// Weight conversions applied at load (LoadOptions): the output head and the
// router held as FP8 (e4m3 with 128x128 block scales, amax / 448 per block,
// as DeepSeek's own quantizer) or BF16, and the derived W_uk^T of every layer
// that makes the absorbed query a plain product. Converted weights live in
// memory the model owns; the checkpoint bytes they replace are never touched.
// Also the byte counts the benchmarks' roofline uses.
#include <algorithm>
#include <cstring>

#include "core/ggml_quants.h"
#include "core/parallel.h"
#include "model/model.h"
#include "ops/ops.h"

namespace dsv3 {

Expected<WeightFormat> ParseWeightFormat(const std::string& text, const std::string& flag) {
  if (text == "stored" || text == "auto") return WeightFormat::kAsStored;
  if (text == "bf16") return WeightFormat::kBf16;
  if (text == "fp8") return WeightFormat::kFp8;
  return Status::Error(flag + " must be stored, bf16 or fp8, not '" + text + "'");
}

namespace {

constexpr int64_t kBlock = 128;

int64_t Ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

uint64_t WeightBytes(const Weight& w) {
  if (w.empty()) return 0;
  uint64_t b = static_cast<uint64_t>(w.nbytes());
  if (w.dtype == DType::kF8E4M3 && w.block_rows > 0) b += Ceil(w.rows, w.block_rows) * w.scale_cols * 4;
  return b;
}

// FP8 copy of any weight: bytes [rows, cols] and scales [ceil(rows/128), ceil(cols/128)].
void QuantizeFp8(const Weight& src, uint8_t* bytes, float* scales, Weight& out) {
  const int64_t rows = src.rows, cols = src.cols, scale_cols = Ceil(cols, kBlock);
  ParallelFor(Ceil(rows, kBlock), 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> block(kBlock * cols);  // [128, cols] decoded rows (load time only)
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kBlock, nr = std::min(kBlock, rows - r0);
      for (int64_t r = 0; r < nr; ++r) ops::DecodeRow(src, r0 + r, block.data() + r * cols);
      for (int64_t cb = 0; cb < scale_cols; ++cb) {
        const int64_t c0 = cb * kBlock, nc = std::min(kBlock, cols - c0);
        float amax = 0.0f;
        for (int64_t r = 0; r < nr; ++r) amax = std::max(amax, ops::AbsMax(block.data() + r * cols + c0, nc));
        const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
        scales[b * scale_cols + cb] = s;
        for (int64_t r = 0; r < nr; ++r)
          ops::EncodeF8E4M3(block.data() + r * cols + c0, nc, s, bytes + (r0 + r) * cols + c0);
      }
    }
  });
  out = Weight();
  out.dtype = DType::kF8E4M3, out.rows = rows, out.cols = cols, out.data = bytes;
  out.scale_inv = scales, out.scale_cols = scale_cols, out.block_rows = kBlock, out.block_cols = kBlock;
}

void ConvertBf16(const Weight& src, uint16_t* data, Weight& out) {
  ParallelFor(src.rows, 64, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(src.cols);
    for (int64_t r = r0; r < r1; ++r) {
      ops::DecodeRow(src, r, row.data());
      for (int64_t c = 0; c < src.cols; ++c) data[r * src.cols + c] = F32ToBf16(row[c]);
    }
  });
  out = Weight();
  out.dtype = DType::kBF16, out.rows = src.rows, out.cols = src.cols, out.data = data;
}

// Can W_uk^T stay FP8? Each head's rows must start on a row-block boundary
// and rc must be whole column blocks, so the transposed blocks are whole too.
bool Fp8TransposeAligned(const Weight& kv_b, int64_t H, int64_t dn, int64_t dv, int64_t rc) {
  if (kv_b.dtype != DType::kF8E4M3 || rc % kv_b.block_cols != 0) return false;
  for (int64_t h = 0; h < H; ++h)
    if ((kv_b.row_offset + h * (dn + dv)) % kv_b.block_rows != 0) return false;
  return true;
}

}  // namespace

const Weight& Model::Convert(const Weight& w, WeightFormat f) {
  const bool to_fp8 = f == WeightFormat::kFp8 && w.dtype != DType::kF8E4M3;
  const bool to_bf16 = f == WeightFormat::kBf16 && w.dtype != DType::kBF16;
  if (w.empty() || (!to_fp8 && !to_bf16)) return w;
  converted_.emplace_back();
  Weight& out = converted_.back();
  if (to_fp8) {
    const int64_t grid = Ceil(w.rows, kBlock) * Ceil(w.cols, kBlock);
    aligned_.emplace_back(w.rows * w.cols + grid * sizeof(float) + 64);
    uint8_t* bytes = aligned_.back().data();
    float* scales = reinterpret_cast<float*>(bytes + (w.rows * w.cols + 63) / 64 * 64);
    QuantizeFp8(w, bytes, scales, out);
  } else {
    aligned_.emplace_back(w.rows * w.cols * 2);
    ConvertBf16(w, reinterpret_cast<uint16_t*>(aligned_.back().data()), out);
  }
  return out;
}

// W_uk^T [H*rc, dn] of one layer: row h*rc + j, column i = kv_b row
// h*(dn+dv) + i, column j. FP8 stays FP8 when its blocks transpose whole,
// BF16/F16 keep their bytes; the rest is decoded to float32, and a GGUF block
// type whose products run on int8 activations gets Q8_0 rows instead: the
// float32 copy was 5% of a Q4_K file's bytes per token and went through the
// float kernel (7% of one-thread decode), while its products quantize the
// query to int8 per 32 values anyway.
void Model::MakeWUkT(AttentionWeights& a) {
  if (!a.w_uk_t.empty()) return;  // bound from the file (GGUF attn_k_b)
  const Config& c = config_;
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim, rc = c.kv_lora_rank;
  const Weight& kv_b = a.kv_b_proj;
  const bool fp8 = Fp8TransposeAligned(kv_b, H, dn, dv, rc);
  const DType dt = fp8 || kv_b.dtype == DType::kBF16 || kv_b.dtype == DType::kF16 ? kv_b.dtype : DType::kF32;
  const int64_t es = static_cast<int64_t>(DTypeSize(dt)), rows = H * rc;
  const int64_t grid = fp8 ? Ceil(rows, kv_b.block_cols) * Ceil(dn, kv_b.block_rows) : 0;
  AlignedBuffer<uint8_t> transposed(rows * dn * es + grid * sizeof(float) + 64);
  uint8_t* data = transposed.data();
  Weight t;
  t.dtype = dt, t.rows = rows, t.cols = dn, t.data = data;
  std::vector<float> row(rc);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < dn; ++i) {
      const int64_t src_row = h * (dn + dv) + i;
      if (dt == DType::kF32) {
        ops::DecodeRow(kv_b, src_row, row.data());
        for (int64_t j = 0; j < rc; ++j) std::memcpy(data + ((h * rc + j) * dn + i) * es, &row[j], es);
      } else {
        const uint8_t* src = static_cast<const uint8_t*>(kv_b.data) + src_row * kv_b.bytes_per_row();
        for (int64_t j = 0; j < rc; ++j) std::memcpy(data + ((h * rc + j) * dn + i) * es, src + j * es, es);
      }
    }
  if (fp8) {
    float* scales = reinterpret_cast<float*>(data + (rows * dn * es + 63) / 64 * 64);
    t.block_rows = kv_b.block_cols, t.block_cols = kv_b.block_rows, t.scale_cols = Ceil(dn, kv_b.block_rows);
    t.scale_inv = scales;
    for (int64_t rb = 0; rb < Ceil(rows, t.block_rows); ++rb)
      for (int64_t cb = 0; cb < t.scale_cols; ++cb) {
        const int64_t h = rb * t.block_rows / rc, j = rb * t.block_rows % rc, i = cb * t.block_cols;
        scales[rb * t.scale_cols + cb] = kv_b.Scale(h * (dn + dv) + i, j);
      }
  }
  if (dt == DType::kF32 && IsBlockType(kv_b.dtype) && dn % 32 == 0 && ops::UsesInt8Products(kv_b, mm_)) {
    t.dtype = DType::kQ8_0;  // [rows, dn / 32] blocks of 34 bytes
    AlignedBuffer<uint8_t> q8(rows * t.bytes_per_row() + 64);
    for (int64_t r = 0; r < rows; ++r)
      QuantizeBlocks(DType::kQ8_0, reinterpret_cast<const float*>(data) + r * dn, dn,
                     q8.data() + r * t.bytes_per_row());
    t.data = q8.data();
    transposed = std::move(q8);
  }
  aligned_.push_back(std::move(transposed));
  a.w_uk_t = t;
}

Status Model::ConvertWeights() {
  converted_.reserve(4 + 2 * weights_.layers.size());  // references into it must stay valid
  const Weight head = Convert(weights_.lm_head, options_.head);
  for (LayerWeights& layer : weights_.layers) {
    if (layer.is_mtp && layer.mtp.shared_head_head.data == weights_.lm_head.data) layer.mtp.shared_head_head = head;
    else if (layer.is_mtp) layer.mtp.shared_head_head = Convert(layer.mtp.shared_head_head, options_.head);
    if (layer.is_moe) layer.moe.gate = Convert(layer.moe.gate, options_.router);
    MakeWUkT(layer.attn);
  }
  weights_.lm_head = head;
  return Status::Ok();
}

uint64_t Model::DecodeWeightBytes(double experts_used) const {
  const Config& c = config_;
  double bytes = static_cast<double>(WeightBytes(weights_.lm_head));
  const double dn = static_cast<double>(c.qk_nope_head_dim), dv = static_cast<double>(c.v_head_dim);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    const AttentionWeights& a = w.attn;
    for (const Weight* m : {&a.q_proj, &a.q_a_proj, &a.q_b_proj, &a.kv_a_proj_with_mqa, &a.o_proj, &a.w_uk_t})
      bytes += static_cast<double>(WeightBytes(*m));
    bytes += a.w_uv.empty() ? static_cast<double>(WeightBytes(a.kv_b_proj)) * dv / (dn + dv)  // the W_uv rows
                            : static_cast<double>(WeightBytes(a.w_uv));
    auto mlp = [](const MlpWeights& m) {
      return static_cast<double>(WeightBytes(m.gate_proj) + WeightBytes(m.up_proj) + WeightBytes(m.down_proj));
    };
    if (!w.is_moe) {
      bytes += mlp(w.mlp);
      continue;
    }
    bytes += static_cast<double>(WeightBytes(w.moe.gate)) + mlp(w.moe.shared_experts);
    for (const MlpWeights& e : w.moe.experts)  // one this process holds (all are the same size)
      if (!e.gate_proj.empty()) {
        bytes += experts_used * mlp(e);
        break;
      }
  }
  return static_cast<uint64_t>(bytes);
}

}  // namespace dsv3
