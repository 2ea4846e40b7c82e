// Benchmarks of the trainer's kernels (not a test; run by hand):
//   build/tests/train_bench [--benchmark_filter=Gemm]
// GEMM shapes of a training step (forward x W^T, input gradient dy W, weight
// gradient dy^T x) with GFLOP/s counters, and the FP8/BF16 operand rounding.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/parallel.h"
#include "train/gemm.h"
#include "train/quant.h"

namespace dsv3::train {
namespace {

std::vector<float> Random(int64_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// args: M, N, K, kind (0: x W^T, 1: dy W, 2: dy^T x), threads
void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2), kind = state.range(3);
  SetNumThreads(static_cast<int>(state.range(4)));
  const bool ta = kind == 2, tb = kind == 0;
  auto a = Random(m * k), b = Random(k * n);
  std::vector<float> c(m * n);
  const GemmArgs g{ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n, c.data(), n, kind == 2};
  for (auto _ : state) Gemm(g);
  state.counters["GFLOP/s"] =
      benchmark::Counter(GemmFlops(m, n, k) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Gemm)
    ->ArgNames({"M", "N", "K", "kind", "threads"})
    ->Args({4096, 256, 256, 0, 1})->Args({4096, 256, 256, 0, 2})
    ->Args({4096, 256, 256, 1, 1})->Args({256, 256, 4096, 2, 1})
    ->Args({4096, 768, 256, 0, 1})->Args({4096, 256, 768, 1, 1})->Args({768, 256, 4096, 2, 1})
    ->Args({4096, 4096, 256, 0, 1})->Args({4096, 4096, 256, 0, 2})
    ->Args({1024, 1024, 1024, 0, 1})->Args({1024, 1024, 1024, 0, 2})
    ->UseRealTime();

// args: rows, cols, mode (0: bf16, 1: e4m3 1x128, 2: e4m3 128x1, 3: e4m3 128x128)
void BM_Round(benchmark::State& state) {
  SetNumThreads(1);
  const int64_t r = state.range(0), c = state.range(1), mode = state.range(2);
  auto src = Random(r * c);
  std::vector<float> dst(r * c);
  for (auto _ : state) {
    if (mode == 0) RoundMatrixBf16(src.data(), r, c, c, dst.data());
    else if (mode == 1) QuantDequantE4M3(src.data(), r, c, c, 1, 128, dst.data());
    else if (mode == 2) QuantDequantE4M3(src.data(), r, c, c, 128, 1, dst.data());
    else QuantDequantE4M3(src.data(), r, c, c, 128, 128, dst.data());
  }
  state.counters["ns/elem"] = benchmark::Counter(static_cast<double>(r * c) * state.iterations(),
                                                 benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Round)->ArgNames({"rows", "cols", "mode"})->Args({4096, 256, 0})->Args({4096, 256, 1})->Args({4096, 256, 2})->Args({4096, 256, 3});

}  // namespace
}  // namespace dsv3::train

BENCHMARK_MAIN();
