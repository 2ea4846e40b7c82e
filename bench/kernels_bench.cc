// Microbenchmarks of every kernel family (cpu/ through ops/): bytes/s for the
// memory-bound matrix-vector products and GFLOP/s for the compute-bound
// ones, single-threaded kernels (per core) and the threaded op. Compare the
// figures with `dsv3 bench --membw` (read bandwidth, FMA peak).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/parallel.h"
#include "cpu/kernels.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"

namespace dsv3 {

using ops::ToMatRef;
namespace {

// Weights in an AlignedBytes buffer like the loaded model's (64-byte rows,
// huge pages from 2 MiB): a std::vector's large block starts 16 bytes into
// a page, and misaligned rows alone halved the FP8 product from memory.
struct Matrix {
  Weight w;
  AlignedBytes bytes;
  std::vector<float> scales;
};

// Random [rows, cols] of dtype (FP8 with 128x128 scales).
Matrix MakeMatrix(DType dt, int64_t rows, int64_t cols) {
  Matrix m;
  std::mt19937 rng(1);
  m.bytes = AlignedBytes(rows * cols * DTypeSize(dt));
  // Weights as a checkpoint holds them: encodings of normal(0, 1) values
  // (e4m3 subnormals as rare as in real weights), drawn from a table of 4096
  // encoded samples so that even 512 MB fill in a second.
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t es = static_cast<int64_t>(DTypeSize(dt));
  std::vector<uint8_t> table(4096 * es);
  for (int64_t i = 0; i < 4096; ++i) {
    const float v = normal(rng) * (dt == DType::kF8E4M3 ? 64.0f : 0.02f);
    if (dt == DType::kF8E4M3) table[i] = F32ToF8E4M3(v);
    if (dt == DType::kBF16 || dt == DType::kF16) {
      const uint16_t h = dt == DType::kBF16 ? F32ToBf16(v) : F32ToF16(v);
      std::memcpy(&table[i * es], &h, 2);
    }
    if (dt == DType::kF32) std::memcpy(&table[i * es], &v, 4);
  }
  uint64_t state = 88172645463325252ull;
  for (int64_t i = 0; i < rows * cols; ++i) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    std::memcpy(m.bytes.data() + i * es, &table[(state >> 20) % 4096 * es], es);
  }
  m.w.dtype = dt, m.w.rows = rows, m.w.cols = cols, m.w.data = m.bytes.data();
  if (dt == DType::kF8E4M3) {
    m.scales.assign(((rows + 127) / 128) * ((cols + 127) / 128), 1e-3f);
    m.w.scale_inv = m.scales.data(), m.w.scale_cols = (cols + 127) / 128;
  }
  return m;
}

DType DtypeArg(int64_t a) {
  const DType kTypes[] = {DType::kF8E4M3, DType::kBF16, DType::kF32, DType::kF16};
  return kTypes[a];
}

// One core, weights in L2 (256 KB of FP8): the kernel's own speed.
void BM_MatVecInCache(benchmark::State& state) {
  const DType dt = DtypeArg(state.range(0));
  const int64_t cols = 2048, rows = 262144 / cols / DTypeSize(dt) * 1;
  Matrix m = MakeMatrix(dt, rows, cols);
  std::vector<float> x(cols, 0.5f), y(rows), scratch(cpu::MatMulScratchFloats(ToMatRef(m.w), 1));
  for (auto _ : state) {
    cpu::MatMulRows(ToMatRef(m.w), x.data(), cols, 1, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * m.w.nbytes());
  state.SetLabel(std::string(DTypeName(dt)) + " " + cpu::TargetName());
}
BENCHMARK(BM_MatVecInCache)->DenseRange(0, 3);

// All threads, 512 MB of weights from DRAM: compare with the read bandwidth.
void BM_MatVecDram(benchmark::State& state) {
  const DType dt = DtypeArg(state.range(0));
  const int64_t cols = 2048, rows = (512ll << 20) / cols / DTypeSize(dt);
  Matrix m = MakeMatrix(dt, rows, cols);
  std::vector<float> x(cols, 0.5f), y(rows);
  for (auto _ : state) {
    ops::MatMul(m.w, x.data(), y.data(), 1);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * m.w.nbytes());
  state.SetLabel(std::string(DTypeName(dt)) + " threads " + std::to_string(NumThreads()));
}
BENCHMARK(BM_MatVecDram)->DenseRange(0, 2)->UseRealTime()->Unit(benchmark::kMillisecond);

// All threads, 512 MB of FP8 weights from DRAM for a batch of n tokens
// (batched decode, speculative verification): bytes/s of weights.
void BM_MatMulDram(benchmark::State& state) {
  const int64_t n = state.range(0), cols = 2048, rows = (512ll << 20) / cols;
  Matrix m = MakeMatrix(DType::kF8E4M3, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows);
  for (auto _ : state) {
    ops::MatMul(m.w, x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * m.w.nbytes());
}
BENCHMARK(BM_MatMulDram)->Arg(1)->Arg(2)->Arg(3)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);

// One core, n tokens against a [rows, 2048] matrix: GFLOP/s.
void BM_MatMul(benchmark::State& state) {
  const DType dt = DtypeArg(state.range(0));
  const int64_t n = state.range(1), cols = 2048, rows = 256;
  Matrix m = MakeMatrix(dt, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::MatMulScratchFloats(ToMatRef(m.w), n));
  for (auto _ : state) {
    cpu::MatMulRows(ToMatRef(m.w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * cols * n * state.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(DTypeName(dt)));
}
BENCHMARK(BM_MatMul)->ArgsProduct({{0, 1, 2}, {1, 2, 3, 4, 6, 8, 16, 64, 512}})->Unit(benchmark::kMillisecond);

// One core, bf16 activations (VDPBF16PS where present).
void BM_MatMulBf16(benchmark::State& state) {
  const DType dt = DtypeArg(state.range(0));
  const int64_t n = state.range(1), cols = 2048, rows = 256;
  Matrix m = MakeMatrix(dt, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), scratch(cpu::MatMulBf16ScratchFloats(ToMatRef(m.w), n));
  for (auto _ : state) {
    cpu::MatMulBf16Rows(ToMatRef(m.w), x.data(), cols, n, y.data(), rows, 0, rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * cols * n * state.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  // The fraction of one core's VDPBF16PS peak, measured in this run (BM_Bf16DotPeak).
  static const double peak = cpu::MeasureBf16DotPeak(1);
  if (peak > 0)
    state.counters["of_bf16_peak"] =
        benchmark::Counter(2.0 * rows * cols * n * state.iterations() / peak, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(DTypeName(dt)) + (cpu::HasAvx512Bf16() ? " vdpbf16ps" : " twin"));
}
BENCHMARK(BM_MatMulBf16)->ArgsProduct({{0, 1}, {16, 64, 512}})->Unit(benchmark::kMillisecond);

// n tokens through the int8 path (QuantInt8MatMulRows) against r [256 x
// 2048]: GFLOP/s, the fraction of VPDPBUSD's peak, and weight bytes/s.
void RunInt8Product(benchmark::State& state, const cpu::MatRef& r, int64_t n, const char* label) {
  std::vector<float> x(n * r.cols), y(n * r.rows), scratch(cpu::QuantInt8ScratchFloats(r, n) + 16);
  for (int64_t i = 0; i < n * r.cols; ++i) x[i] = static_cast<float>(i % 97) * 0.01f - 0.48f;
  for (auto _ : state) {
    cpu::QuantInt8MatMulRows(r, x.data(), r.cols, n, y.data(), r.rows, 0, r.rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * static_cast<double>(r.rows * r.cols * n) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(state.iterations() * r.rows * r.cols);
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  static const double peak = cpu::MeasureInt8DotPeak(1);
  if (peak > 0) state.counters["of_int8_peak"] = benchmark::Counter(flops / peak, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(label) + (cpu::HasAvx512Vnni() ? " vnni" : " twin"));
}

// FP8 weights through the int8 tile kernel (`--int8-fp8` on mapped weights,
// issue 18): the same [256 x 2048] matrix as BM_MatMulBf16, tiles made per call.
void BM_MatMulFp8Int8(benchmark::State& state) {
  Matrix m = MakeMatrix(DType::kF8E4M3, 256, 2048);
  RunInt8Product(state, ToMatRef(m.w), state.range(0), "fp8");
}
BENCHMARK(BM_MatMulFp8Int8)->Arg(16)->Arg(64)->Arg(512)->Unit(benchmark::kMillisecond);

// The same FP8 matrix kept as int8 tiles (`--int8-fp8` copying the weights
// into memory, DType I8_T32): below 64 tokens the stored tiles' kernel, from
// 64 on the tile product without preparing the tile. 1..4 tokens: the matrix
// is in L2, so bytes/s is the kernel's own streaming speed.
void BM_MatMulFp8Tiles(benchmark::State& state) {
  Matrix m = MakeMatrix(DType::kF8E4M3, 256, 2048);
  AlignedBytes levels(ops::StoredTilesBytes(m.w)), exps(ops::StoredTilesExpBytes(m.w));
  const Weight w = ops::StoreTiles(m.w, levels.data(), exps.data());
  RunInt8Product(state, ToMatRef(w), state.range(0), "i8_t32");
}
BENCHMARK(BM_MatMulFp8Tiles)->Arg(1)->Arg(2)->Arg(4)->Arg(16)->Arg(64)->Arg(512)->Unit(benchmark::kMicrosecond);

// The same tiles from DRAM, all threads, as the routed experts of a
// batched decode step see them: 96 matrices of [1408, 2048] (a bench-moe
// layer's 32 experts' gate and up projections and their down projections'
// bytes; 277 MB), each with n tokens, in one batch of jobs split over the
// threads by rows. Bytes/s of weights against `dsv3 bench --membw`.
void BM_ExpertTilesDram(benchmark::State& state) {
  const int64_t n = state.range(0), rows = 1408, cols = 2048, count = 96;
  Matrix m = MakeMatrix(DType::kF8E4M3, rows, cols);
  HugePageArena arena;  // as the model keeps them: every byte on huge pages
  std::vector<Weight> w;
  for (int64_t e = 0; e < count; ++e) {
    uint8_t* levels = arena.Allocate(ops::StoredTilesBytes(m.w));
    w.push_back(ops::StoreTiles(m.w, levels, arena.Allocate(ops::StoredTilesExpBytes(m.w))));
  }
  std::vector<float> x(n * cols, 0.5f), y(count * n * rows);
  std::vector<ops::MatMulJob> jobs;
  for (int64_t e = 0; e < count; ++e) jobs.push_back({&w[e], x.data(), cols, y.data() + e * n * rows, rows, n});
  ops::MatMulOptions o;
  o.int8_fp8 = true;
  for (auto _ : state) {
    ops::MatMulBatch(jobs, o);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * count * rows * cols);
  state.SetLabel("i8_t32 threads " + std::to_string(NumThreads()));
}
BENCHMARK(BM_ExpertTilesDram)->Arg(1)->Arg(2)->Arg(3)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);

// One core, fused expert gate/up + SiLU (1408 x 2048 each, FP8).
void BM_GateUpSilu(benchmark::State& state) {
  const int64_t n = state.range(0), cols = 2048, rows = 1408;
  Matrix g = MakeMatrix(DType::kF8E4M3, rows, cols), u = MakeMatrix(DType::kF8E4M3, rows, cols);
  std::vector<float> x(n * cols, 0.5f), y(n * rows), tmp(n * rows), scratch(cpu::MatMulScratchFloats(ToMatRef(g.w), n));
  for (auto _ : state) {
    cpu::GateUpSiluRows(ToMatRef(g.w), ToMatRef(u.w), x.data(), cols, n, y.data(), tmp.data(), rows, 0, rows,
                        scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * rows * cols * n * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_GateUpSilu)->Arg(1)->Arg(48)->Unit(benchmark::kMillisecond);

// One core's float32 FMA peak (the same measurement as `dsv3 bench`), the
// ceiling for the compute-bound kernels below, taken in the same run.
void BM_FmaPeak(benchmark::State& state) {
  double best = 0;
  for (auto _ : state) best = std::max(best, ops::MeasureFmaPeak(1));
  state.counters["GFLOP/s"] = best / 1e9;
}
BENCHMARK(BM_FmaPeak)->Iterations(3);

// One core's VDPBF16PS and VPDPBUSD peaks (0 without the instruction): the
// limits of the bf16 and int8 GEMMs (BM_MatMulBf16, quant_bench's
// BM_QuantMatMulInt8).
void BM_Bf16DotPeak(benchmark::State& state) {
  double best = 0;
  for (auto _ : state) best = std::max(best, cpu::MeasureBf16DotPeak(1));
  state.counters["GFLOP/s"] = best / 1e9;
}
BENCHMARK(BM_Bf16DotPeak)->Iterations(3);

void BM_Int8DotPeak(benchmark::State& state) {
  double best = 0;
  for (auto _ : state) best = std::max(best, cpu::MeasureInt8DotPeak(1));
  state.counters["GOP/s"] = best / 1e9;
}
BENCHMARK(BM_Int8DotPeak)->Iterations(3);

// One core, absorbed MLA attention: H heads (bench-moe's 16, or the 8 one
// thread takes in 2-thread decode), rc 512 + dr 64, `ctx` rows (131,072:
// 75 MB of FP8 rows, streamed from memory as in 128K decode).
void BM_MlaAttention(benchmark::State& state) {
  const int64_t ctx = state.range(0), m = state.range(1), H = state.range(3), rc = 512, dr = 64, lat = rc + dr;
  const bool f8 = state.range(2) != 0;
  std::vector<float> rows(ctx * lat, 0.01f), q(m * H * lat, 0.02f), o(m * H * rc);
  std::vector<uint8_t> rows8(ctx * lat, 0x30);
  std::vector<float> scales(2 * ctx, 0.01f);
  cpu::LatentRows view{f8 ? nullptr : rows.data(), f8 ? rows8.data() : nullptr, scales.data(), lat};
  const cpu::MlaShape shape{rc, dr, 0.07f};
  std::vector<float> scratch(cpu::MlaScratchFloats(shape, m, H));
  for (auto _ : state) {
    cpu::MlaAttention(shape, q.data(), H * lat, m, ctx - m, 0, H, view, o.data(), H * rc, scratch.data());
    benchmark::DoNotOptimize(o.data());
  }
  const double flops = 2.0 * H * (lat + rc) * static_cast<double>(m) * static_cast<double>(ctx - m / 2);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * state.iterations(), benchmark::Counter::kIsRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(f8 ? "fp8 rows" : "f32 rows");
}
BENCHMARK(BM_MlaAttention)->ArgsProduct({{512, 4096}, {1, 4}, {0, 1}, {16}})->Args({4096, 1, 1, 8})->Args({131072, 1, 1, 8});

// Threaded, both forms of MLA attention for a block of m queries after a
// p0-token prefix (bench-moe's shapes, FP8 kv_b_proj and W_uk^T): absorbed
// (W_uk products, latent attention, W_uv products) against decompressed
// (rows expanded by kv_b_proj per 256-row chunk, per-head attention). Args:
// p0, m, form (0 absorbed, 1 decompressed), int8 products (--int8-fp8).
// Where the two cross for p0 > 0 is what Model::UseDecompressed estimates.
void BM_MlaForms(benchmark::State& state) {
  const int64_t p0 = state.range(0), m = state.range(1), H = 16, rc = 512, dn = 128, dr = 64, dv = 128;
  const int64_t lat = rc + dr, dq = dn + dr, ctx = p0 + m;
  const bool decompressed = state.range(2) != 0;
  ops::MatMulOptions mm;
  mm.int8_fp8 = state.range(3) != 0;
  const Matrix kv_b = MakeMatrix(DType::kF8E4M3, H * (dn + dv), rc), uk = MakeMatrix(DType::kF8E4M3, H * rc, dn);
  std::vector<float> rows(ctx * lat, 0.01f), q(m * H * dq, 0.02f), q_full(m * H * lat), o_lat(m * H * rc);
  std::vector<float> o(m * H * dv), mha_lat(ops::kMhaChunk * lat), mha_kv(ops::kMhaChunk * H * (dn + dv));
  std::vector<float> mx(m * H), sum(m * H);
  ops::LatentRowsView view;
  view.f32 = rows.data(), view.stride = lat;
  const ops::AttentionBlock block{0, m, p0, view};
  std::vector<Weight> uk_h(H), uv_h(H);
  std::vector<ops::MatMulJob> uk_jobs, uv_jobs;
  for (int64_t h = 0; h < H; ++h) {
    uk_h[h] = uk.w.Rows(h * rc, rc), uv_h[h] = kv_b.w.Rows(h * (dn + dv) + dn, dv);
    uk_jobs.push_back({&uk_h[h], q.data() + h * dq, H * dq, q_full.data() + h * lat, H * lat, m});
    uv_jobs.push_back({&uv_h[h], o_lat.data() + h * rc, H * rc, o.data() + h * dv, H * dv, m});
  }
  const ops::MhaShape shape{H, rc, dn, dr, dv, 0.07f};
  const ops::MhaBuffers buf{mha_lat.data(), mha_kv.data(), mx.data(), sum.data()};
  for (auto _ : state) {
    if (decompressed) {
      ops::MhaAttention(kv_b.w, mm, shape, q.data(), m, p0, view, buf, o.data());
    } else {
      ops::MatMulBatch(uk_jobs, mm);
      ops::MlaAttention(rc, dr, 0.07f, H, q_full.data(), std::span<const ops::AttentionBlock>(&block, 1), o_lat.data());
      ops::MatMulBatch(uv_jobs, mm);
    }
    benchmark::DoNotOptimize(o.data());
  }
  state.SetLabel(std::string(decompressed ? "decompressed" : "absorbed") + (mm.int8_fp8 ? " int8" : ""));
}
BENCHMARK(BM_MlaForms)
    ->ArgsProduct({{0}, {16, 64, 512}, {0, 1}, {1}})
    ->ArgsProduct({{2048}, {64, 128, 192, 256, 512}, {0, 1}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_RmsNorm(benchmark::State& state) {
  const int64_t d = state.range(0);
  std::vector<float> x(d, 0.3f), w(d, 1.0f), out(d);
  for (auto _ : state) {
    cpu::RmsNorm(x.data(), d, w.data(), 1e-6f, out.data(), d, 1, d);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * d * 12);
}
BENCHMARK(BM_RmsNorm)->Arg(2048)->Arg(7168);

void BM_Softmax(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> x(n);
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.001f * static_cast<float>(i % 1000);
    cpu::Softmax(x.data(), n);
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_Softmax)->Arg(512)->Arg(129280);

void BM_SiluMul(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> g(n, 0.2f), u(n, 0.5f);
  for (auto _ : state) {
    cpu::SiluMul(g.data(), u.data(), n);
    benchmark::DoNotOptimize(g.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_SiluMul)->Arg(1408)->Arg(10944);

void BM_Rope(benchmark::State& state) {
  std::vector<float> x(64, 0.1f), c(32, 0.9f), s(32, 0.1f);
  for (auto _ : state) {
    cpu::RopeInterleaved(x.data(), c.data(), s.data(), 64);
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_Rope);

void BM_EncodeF8(benchmark::State& state) {
  const int64_t n = 576;
  std::vector<float> x(n, 0.37f);
  std::vector<uint8_t> out(n);
  for (auto _ : state) {
    cpu::EncodeF8E4M3(x.data(), n, 0.01f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_EncodeF8);

}  // namespace
}  // namespace dsv3

BENCHMARK_MAIN();
