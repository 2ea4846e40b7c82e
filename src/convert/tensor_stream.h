// The streaming core of the converters: a RowSource yields the rows of one
// output tensor as float32 a chunk at a time (decoded from the mapped input
// with ops::DecodeRow, so FP8 x block scale is computed exactly as the engine
// computes it); Stream* encode each chunk into the target dtype and hand the
// bytes to a sink (a file writer). Working memory is one chunk, sized from
// the caller's buffer budget; source pages are released after each chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "convert/progress.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "ops/weight.h"

namespace dsv3 {

using ByteSink = std::function<Status(const void* data, size_t n)>;

class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t cols() const = 0;
  // out [n, cols] = rows r0 .. r0+n-1, as float32.
  virtual void Rows(int64_t r0, int64_t n, float* out) = 0;
  // The source bytes behind rows [r0, r0+n) are no longer needed.
  virtual void Release(int64_t r0, int64_t n) = 0;
};

// A stored tensor viewed as a matrix [rows, cols] (1-D tensors: one row).
// FP8 weights need their scale grid and block size.
Expected<Weight> WeightFromTensor(const TensorInfo& t, const TensorInfo* scale, int64_t block_rows,
                                  int64_t block_cols);

// Rows of one matrix, or of several matrices of equal shape stacked on top of
// each other (routed experts -> one [E * rows, cols] GGUF tensor).
std::unique_ptr<RowSource> MatrixRows(std::vector<Weight> parts);
// MLA split for llama.cpp: from kv_b [H*(dn+dv), rc], the rows of
// attn_k_b [H*rc, dn] (W_UK of each head transposed) or attn_v_b [H*dv, rc].
std::unique_ptr<RowSource> KbRows(const Weight& kv_b, int64_t heads, int64_t dn, int64_t dv);
std::unique_ptr<RowSource> VbRows(const Weight& kv_b, int64_t heads, int64_t dn, int64_t dv);

// Rows per chunk for `bytes_per_row` of working memory, a multiple of `align`.
int64_t ChunkRows(int64_t buffer_bytes, int64_t bytes_per_row, int64_t align, int64_t total_rows);

// Encodes every row into `dtype` (F32, F16, BF16 round-to-nearest-even, Q8_0).
Status StreamEncoded(RowSource& src, DType dtype, int64_t buffer_bytes, const ByteSink& sink, Progress& progress);

// 128x128 (block_rows x block_cols) FP8 e4m3 quantization: per block
// s = amax / 448 (ue8m0: the next power of two >= that), q = e4m3(x / s).
// Writes q row-major to the sink and fills `scales` [ceil(rows/br), ceil(cols/bc)].
// Non-finite weights are an error naming `name`.
Status StreamFp8(RowSource& src, int64_t block_rows, int64_t block_cols, bool ue8m0, int64_t buffer_bytes,
                 const std::string& name, const ByteSink& sink, std::vector<float>& scales, Progress& progress);
// The scale of a block whose largest magnitude is `amax` (> 0 and finite).
float Fp8BlockScale(float amax, bool ue8m0);

// The stored bytes of `t`, unchanged, in buffer-sized pieces.
Status StreamRaw(const TensorInfo& t, int64_t buffer_bytes, const ByteSink& sink, Progress& progress);

}  // namespace dsv3
