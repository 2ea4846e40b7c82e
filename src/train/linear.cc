// Linear layer GEMMs in fp32 / bf16 / fp8 numerics; see linear.h.
#include "train/linear.h"

#include "train/gemm.h"

namespace dsv3::train {

namespace {
constexpr int64_t kTile = 128;  // DeepSeek-V3's quantization group size
}  // namespace

const float* LinearOps::Prepare(Precision p, const float* src, int64_t rows, int64_t cols, int64_t ld,
                                int64_t block_rows, int64_t block_cols, std::vector<float>& buf,
                                int64_t* ld_out) {
  if (p == Precision::kFp32) {
    *ld_out = ld;
    return src;
  }
  if (static_cast<int64_t>(buf.size()) < rows * cols) buf.resize(rows * cols);
  if (p == Precision::kBf16) {
    RoundMatrixBf16(src, rows, cols, ld, buf.data());
  } else {
    QuantDequantE4M3(src, rows, cols, ld, block_rows, block_cols, buf.data());
  }
  *ld_out = cols;
  return buf.data();
}

void LinearOps::Forward(Precision p, const float* x, int64_t ldx, const float* w, int64_t out, int64_t in,
                        float* y, int64_t ldy, int64_t n) {
  GemmArgs g;
  // x [n, in]: 1 x 128 tiles along `in`; W [out, in]: 128 x 128 blocks.
  g.a = Prepare(p, x, n, in, ldx, 1, kTile, a_, &g.lda);
  g.b = Prepare(p, w, out, in, in, kTile, kTile, b_, &g.ldb);
  g.trans_b = true;  // op(B) = W^T
  g.m = n, g.n = out, g.k = in;
  g.c = y, g.ldc = ldy;
  Gemm(g);
  flops_ += GemmFlops(n, out, in);
}

void LinearOps::Backward(Precision p, const float* dy, int64_t lddy, const float* x, int64_t ldx, const float* w,
                         int64_t out, int64_t in, float* dx, int64_t lddx, bool dx_accumulate, float* dw,
                         int64_t n) {
  if (dx) {
    // dx [n, in] = dy [n, out] W [out, in]: dy in 1 x 128 tiles along `out`.
    GemmArgs g;
    g.a = Prepare(p, dy, n, out, lddy, 1, kTile, a_, &g.lda);
    g.b = Prepare(p, w, out, in, in, kTile, kTile, b_, &g.ldb);
    g.m = n, g.n = in, g.k = out;
    g.c = dx, g.ldc = lddx, g.accumulate = dx_accumulate;
    Gemm(g);
    flops_ += GemmFlops(n, in, out);
  }
  // dW [out, in] += dy^T [out, n] x [n, in]: the reduction runs over tokens,
  // so both inputs are tiled 128 tokens x 1 channel.
  GemmArgs g;
  g.a = Prepare(p, dy, n, out, lddy, kTile, 1, a_, &g.lda);
  g.b = Prepare(p, x, n, in, ldx, kTile, 1, b_, &g.ldb);
  g.trans_a = true;
  g.m = out, g.n = in, g.k = n;
  g.c = dw, g.ldc = in, g.accumulate = true;
  Gemm(g);
  flops_ += GemmFlops(out, in, n);
}

}  // namespace dsv3::train
