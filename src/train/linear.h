// A linear layer y = x W^T for training: forward, and backward as the two
// GEMMs dx = dy W and dW += dy^T x, each in the precision the run asks for.
// fp32 multiplies the float32 values; bf16 rounds both inputs of every GEMM
// to BF16; fp8 quantizes both inputs to e4m3 the DeepSeek-V3 way (activations
// and output gradients per 1 x 128 tile along the reduction dimension, that
// is per token in forward/input-gradient GEMMs and per channel over 128
// tokens in the weight-gradient GEMM; weights per 128 x 128 block).
// Accumulation is always float32. The scratch buffers for the rounded copies
// live in the object and only grow.
#pragma once

#include <cstdint>
#include <vector>

#include "train/quant.h"

namespace dsv3::train {

class LinearOps {
 public:
  // y [n, out] = x [n, in] W^T, W [out, in]. Rows of x / y are ldx / ldy apart.
  void Forward(Precision p, const float* x, int64_t ldx, const float* w, int64_t out, int64_t in, float* y,
               int64_t ldy, int64_t n);
  // dx [n, in] = (dx_accumulate ? dx : 0) + dy [n, out] W (skipped if dx is
  // null); dW [out, in] += dy^T x.
  void Backward(Precision p, const float* dy, int64_t lddy, const float* x, int64_t ldx, const float* w,
                int64_t out, int64_t in, float* dx, int64_t lddx, bool dx_accumulate, float* dw, int64_t n);

  double flops() const { return flops_; }  // GEMM flops issued so far
  void add_flops(double f) { flops_ += f; }

 private:
  // Returns src itself (fp32) or a rounded contiguous copy in `buf`; *ld_out
  // is the stride of what is returned.
  const float* Prepare(Precision p, const float* src, int64_t rows, int64_t cols, int64_t ld, int64_t block_rows,
                       int64_t block_cols, std::vector<float>& buf, int64_t* ld_out);

  std::vector<float> a_, b_;  // rounded operand copies
  double flops_ = 0.0;
};

}  // namespace dsv3::train
