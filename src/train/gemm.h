// The float32 GEMM the trainer spends most of its time in. Gemm() is a
// blocked, packed, vectorised kernel (Highway, dispatched at run time to the
// widest x86 target the CPU has) threaded over the larger output dimension;
// GemmReference() is its scalar twin that defines the numerics (the twin test
// compares them). The kernel lives in train/ rather than cpu/ because only
// training multiplies float32 activations by float32 master weights; the
// inference kernels read weights in their stored formats.
//
// Every output element is accumulated in the same order whatever the thread
// count (threads split output rows or columns, never the reduction), so a
// training run is bit-for-bit reproducible on any number of cores.
#pragma once

#include <cstdint>

namespace dsv3::train {

// C [M, N] (row stride ldc) = (accumulate ? C : 0) + op(A) op(B), where
// op(A) [M, K] is A stored row-major [M, K] (stride lda), or its transpose
// stored [K, M] when trans_a; op(B) [K, N] is B stored [K, N] (stride ldb),
// or its transpose stored [N, K] when trans_b.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
};

void Gemm(const GemmArgs& args);
// Single-threaded, even when called outside a parallel region (for callers
// that already split work over threads, e.g. attention per head).
void GemmSerial(const GemmArgs& args);
// Scalar twin: plain triple loop, float32 products summed in double.
void GemmReference(const GemmArgs& args);

// 2*M*N*K: floating-point operations of one call, for GFLOP/s reports.
inline double GemmFlops(int64_t m, int64_t n, int64_t k) { return 2.0 * m * n * k; }

}  // namespace dsv3::train
