// Microbenchmarks of the GGUF block-type kernels (cpu/quant_matmul.cc, issue
// 16): weight bytes/s of the decode products (one core with the weights in
// L2, and all threads from DRAM; compare with `dsv3 bench --membw`), GFLOP/s
// of the batched/prefill products, and the encoders' speed (input MB/s of
// ggml's quantize_row_*_ref arithmetic, what `dsv3 convert --type` runs).
// Run: build/bench/quant_bench --benchmark_filter=Dram
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/ggml_quants.h"
#include "core/q4k_r4.h"
#include "core/parallel.h"
#include "cpu/kernels.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"

namespace dsv3 {

using ops::ToMatRef;
namespace {

constexpr DType kTypes[] = {DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_K, DType::kQ4_0,
                            DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ2_K, DType::kQ3_K,
                            DType::kIQ4_NL, DType::kIQ4_XS, DType::kQ4_KR4};

struct Matrix {
  Weight w;
  AlignedBytes bytes;
};

// [rows, cols] of type t: 64 rows of quantized gaussians repeated (the
// kernels' speed does not depend on the values; encoding is slow). Q4_K_R4
// is Q4_K interleaved as --repack does it.
Matrix MakeMatrix(DType t, int64_t rows, int64_t cols) {
  if (t == DType::kQ4_KR4) {
    Matrix q = MakeMatrix(DType::kQ4_K, rows, cols), m;
    m.bytes = AlignedBytes(q.w.nbytes());
    RepackQ4KR4(q.bytes.data(), rows, cols, m.bytes.data());
    m.w = q.w, m.w.dtype = t, m.w.data = m.bytes.data();
    return m;
  }
  Matrix m;
  const int64_t row_bytes = static_cast<int64_t>(DTypeBytes(t, cols)), distinct = std::min<int64_t>(rows, 64);
  m.bytes = AlignedBytes(rows * row_bytes);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(cols);
  for (int64_t r = 0; r < distinct; ++r) {
    for (float& v : x) v = normal(rng);
    QuantizeBlocks(t, x.data(), cols, m.bytes.data() + r * row_bytes);
  }
  for (int64_t r = distinct; r < rows; ++r)
    std::memcpy(m.bytes.data() + r * row_bytes, m.bytes.data() + (r % distinct) * row_bytes, row_bytes);
  m.w.dtype = t, m.w.rows = rows, m.w.cols = cols, m.w.data = m.bytes.data();
  return m;
}

// One core, weights in L2 (~256 KB): the kernel's own speed, n tokens.
void BM_QuantDotInCache(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), cols = 2048;
  const int64_t rows = std::max<int64_t>(16, 262144 / static_cast<int64_t>(DTypeBytes(t, cols)));
  Matrix m = MakeMatrix(t, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::QuantMatMulScratchFloats(ToMatRef(m.w), n) + 16);
  for (auto _ : state) {
    cpu::MatMulRows(ToMatRef(m.w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * m.w.nbytes());
  state.SetLabel(std::string(DTypeName(t)) + " " + cpu::TargetName());
}
BENCHMARK(BM_QuantDotInCache)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {1}});
BENCHMARK(BM_QuantDotInCache)->ArgsProduct({{0, 1, 2}, {2, 4, 7}});

// All threads, ~256 MB of weights from DRAM, n tokens: weight bytes/s.
void BM_QuantDotDram(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), cols = 2048;
  const int64_t rows = (256ll << 20) / static_cast<int64_t>(DTypeBytes(t, cols));
  Matrix m = MakeMatrix(t, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows);
  for (auto _ : state) {
    ops::MatMul(m.w, x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * m.w.nbytes());
  state.SetLabel(std::string(DTypeName(t)) + " threads " + std::to_string(NumThreads()));
}
BENCHMARK(BM_QuantDotDram)
    ->ArgsProduct({{0, 1, 2, 3, 4, 12}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One core, weights in L2, int8 activations (the default decode path of
// the block types; VNNI where present): weight bytes/s.
void BM_QuantInt8InCache(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), cols = 2048;
  const int64_t rows = std::max<int64_t>(16, 262144 / static_cast<int64_t>(DTypeBytes(t, cols))) / 16 * 16;
  Matrix m = MakeMatrix(t, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::QuantInt8ScratchFloats(ToMatRef(m.w), n) + 16);
  for (auto _ : state) {
    cpu::QuantInt8MatMulRows(ToMatRef(m.w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * m.w.nbytes());
  state.SetLabel(std::string(DTypeName(t)) + (cpu::HasAvx512Vnni() ? " vnni" : " twin"));
}
BENCHMARK(BM_QuantInt8InCache)->ArgsProduct({{1, 12, 6, 0, 4}, {1, 2, 4}});

// Q8_0 stored as int8 tiles (--repack, Q8_0_T32) beside BM_QuantInt8InCache's
// Q8_0 (type 4): one core, weights in L2, weight bytes/s.
void BM_Q8_0TilesInCache(benchmark::State& state) {
  const int64_t n = state.range(0), cols = 2048;
  const int64_t rows = 262144 / static_cast<int64_t>(DTypeBytes(DType::kQ8_0, cols)) / 32 * 32;
  Matrix m = MakeMatrix(DType::kQ8_0, rows, cols);
  AlignedBytes tiles(ops::StoredTilesBytes(m.w));
  const Weight w = ops::StoreTiles(m.w, tiles.data(), nullptr);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::QuantInt8ScratchFloats(ToMatRef(w), n) + 16);
  for (auto _ : state) {
    cpu::QuantInt8MatMulRows(ToMatRef(w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * w.nbytes());
  state.SetLabel(cpu::HasAvx512Vnni() ? "Q8_0_T32 vnni" : "Q8_0_T32 twin");
}
BENCHMARK(BM_Q8_0TilesInCache)->Arg(1)->Arg(2)->Arg(4);

// The same from DRAM (~256 MB, all threads) beside BM_QuantDotDram's Q8_0.
void BM_Q8_0TilesDram(benchmark::State& state) {
  const int64_t n = state.range(0), cols = 2048;
  const int64_t rows = (256ll << 20) / static_cast<int64_t>(DTypeBytes(DType::kQ8_0, cols)) / 32 * 32;
  Matrix m = MakeMatrix(DType::kQ8_0, rows, cols);
  AlignedBytes tiles(ops::StoredTilesBytes(m.w));
  const Weight w = ops::StoreTiles(m.w, tiles.data(), nullptr);
  m = Matrix();
  std::vector<float> x(n * cols, 0.5f), y(n * rows);
  for (auto _ : state) {
    ops::MatMul(w, x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * w.nbytes());
  state.SetLabel("Q8_0_T32 threads " + std::to_string(NumThreads()));
}
BENCHMARK(BM_Q8_0TilesDram)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// One core, n tokens against [256, 2048]: GFLOP/s (prefill, batched decode).
void BM_QuantMatMul(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), cols = 2048, rows = 256;
  Matrix m = MakeMatrix(t, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::QuantMatMulScratchFloats(ToMatRef(m.w), n) + 16);
  for (auto _ : state) {
    cpu::MatMulRows(ToMatRef(m.w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * rows * cols * n * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(DTypeName(t)));
}
BENCHMARK(BM_QuantMatMul)->ArgsProduct({{0, 1, 2}, {1, 4, 16, 64, 512}})->Unit(benchmark::kMillisecond);

// One core, int8 activations (VNNI where present, else the scalar twin).
void BM_QuantMatMulInt8(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n = state.range(1), cols = 2048, rows = 256;
  Matrix m = MakeMatrix(t, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::QuantInt8ScratchFloats(ToMatRef(m.w), n) + 16);
  for (auto _ : state) {
    cpu::QuantInt8MatMulRows(ToMatRef(m.w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * rows * cols * n * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  // The fraction of one core's VPDPBUSD peak, measured in this run.
  static const double peak = cpu::MeasureInt8DotPeak(1);
  if (peak > 0)
    state.counters["of_int8_peak"] =
        benchmark::Counter(2.0 * rows * cols * n * state.iterations() / peak, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(DTypeName(t)) + (cpu::HasAvx512Vnni() ? " vnni" : " twin"));
}
BENCHMARK(BM_QuantMatMulInt8)->ArgsProduct({{0, 1, 2, 12}, {1, 4, 16, 64, 512}})->Unit(benchmark::kMillisecond);

// One core: ggml's reference encoder, input float MB/s.
void BM_QuantizeRow(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t cols = 2048;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(16 * cols);
  for (float& v : x) v = normal(rng);
  std::vector<uint8_t> out(DTypeBytes(t, cols));
  int64_t r = 0;
  for (auto _ : state) {
    QuantizeBlocks(t, x.data() + (r++ % 16) * cols, cols, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * cols * 4);
  state.SetLabel(std::string(DTypeName(t)));
}
BENCHMARK(BM_QuantizeRow)->DenseRange(0, 11);

}  // namespace
}  // namespace dsv3

BENCHMARK_MAIN();
