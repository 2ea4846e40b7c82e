// The SIMD kernels over GGUF block types (cpu/quant_matmul.cc) against their
// scalar twins on every Highway target compiled in: DequantizeRows equals
// core's DequantizeBlocks bit for bit; the matrix products (fused decode path
// for 1..7 tokens, dequantized tiles + float GEMM from 8) equal
// ops::ref::MatMul up to float32 summation order, stated as 2e-6 of
// sum |w x| per output; the SwiGLU stage likewise.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/ggml_quants.h"
#include "cpu/kernels.h"
#include "ops/ops.h"
#include "hwy_test_util.h"
#include "quant_test_util.h"

namespace dsv3 {
namespace {

constexpr auto& kTypes = kQuantTypes;

// The float32-activation path (int8 activations: quant_int8_test).
constexpr ops::MatMulOptions kExact{.exact_block_activations = true};

TEST(QuantKernels, DequantizeRowsBitExactWithScalarTwin) {
  std::mt19937 rng(7);
  for (DType t : kTypes) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t n = 3 * 256;
    QuantWeight q = MakeQuant(t, 2, n, rng);
    std::vector<float> want(2 * n), got(2 * n, -7.0f);
    DequantizeBlocks(t, q.bytes.data(), 2 * n, want.data());
    ForEachTarget([&] {
      cpu::DequantizeRows(t, q.bytes.data(), 2 * n, got.data());
      for (int64_t i = 0; i < 2 * n; ++i)
        ASSERT_EQ(FloatBits(got[i]), FloatBits(want[i])) << "element " << i << ": " << got[i] << " vs " << want[i];
    });
  }
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& bound,
                 const char* what) {
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(got[i] - want[i]), bound[i]) << what << " output " << i << ": " << got[i] << " vs " << want[i];
}

// 2e-6 * sum_k |w_rk x_tk| (+ a denormal floor) per output.
std::vector<float> Bounds(const Weight& w, const std::vector<float>& x, int64_t n) {
  std::vector<float> row(w.cols), b(n * w.rows);
  for (int64_t r = 0; r < w.rows; ++r) {
    ops::DecodeRow(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t k = 0; k < w.cols; ++k) s += std::fabs(row[k] * x[t * w.cols + k]);
      b[t * w.rows + r] = static_cast<float>(2e-6 * s + 1e-30);
    }
  }
  return b;
}

TEST(QuantKernels, MatMulMatchesScalarTwinEveryTypeAndTokenCount) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (DType t : kTypes) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t be = DTypeBlockElems(t);
    for (int64_t cols : {be, 3 * be}) {
      QuantWeight q = MakeQuant(t, 37, cols, rng);
      for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 17}) {
        std::vector<float> x(n * cols), want(n * q.w.rows), got(n * q.w.rows, -1.0f);
        for (float& v : x) v = dist(rng);
        ops::ref::MatMul(q.w, x.data(), cols, want.data(), q.w.rows, n);
        const std::vector<float> bound = Bounds(q.w, x, n);
        ForEachTarget([&] {
          ops::MatMul(q.w, x.data(), cols, got.data(), q.w.rows, n, kExact);
          ExpectClose(got, want, bound, "MatMul");
        });
      }
    }
  }
}

TEST(QuantKernels, RowViewsAndGateUpSilu) {
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (DType t : {DType::kQ4_K, DType::kQ6_K, DType::kQ4_0, DType::kIQ4_XS}) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t cols = 512;
    QuantWeight g = MakeQuant(t, 40, cols, rng), u = MakeQuant(t, 40, cols, rng);
    const Weight gv = g.w.Rows(5, 30), uv = u.w.Rows(5, 30);
    for (int64_t n : {1, 3, 12}) {
      std::vector<float> x(n * cols), want(n * 30), wtmp(n * 30), got(n * 30), tmp(n * 30);
      for (float& v : x) v = dist(rng);
      ops::ref::GateUpSilu({&gv, &uv, x.data(), cols, want.data(), wtmp.data(), 30, n});
      std::vector<float> gate(n * 30), up(n * 30);
      ops::ref::MatMul(gv, x.data(), cols, gate.data(), 30, n);
      ops::ref::MatMul(uv, x.data(), cols, up.data(), 30, n);
      const std::vector<float> bg = Bounds(gv, x, n), bu = Bounds(uv, x, n);
      std::vector<float> bound(n * 30);
      for (size_t i = 0; i < bound.size(); ++i)  // |d silu(g) u| <= 1.1 |u| dg + |silu(g)| du
        bound[i] = 1.1f * std::fabs(up[i]) * bg[i] + (std::fabs(gate[i]) + 0.3f) * bu[i] + 1e-6f * std::fabs(want[i]);
      ForEachTarget([&] {
        const ops::GateUpJob job{&gv, &uv, x.data(), cols, got.data(), tmp.data(), 30, n};
        ops::GateUpSiluBatch({&job, 1}, kExact);
        ExpectClose(got, want, bound, "GateUpSilu");
      });
    }
  }
}

}  // namespace
}  // namespace dsv3
