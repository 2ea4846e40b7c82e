// The public ops: pick the SIMD kernel (cpu/) when it covers the weight
// format, else the scalar reference (ops::ref), and split the work over the
// thread pool. Matrix products are split by output rows in proportion to
// their cost, across all the jobs of a batch at once (experts, heads), so a
// whole MoE layer is one parallel region per stage. Scratch buffers are
// per-thread and only grow: the token loop does not allocate.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "cpu/kernels.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"

namespace dsv3::ops {

cpu::MatRef ToMatRef(const Weight& w) {
  cpu::MatRef m;
  m.dtype = w.dtype, m.rows = w.rows, m.cols = w.cols, m.data = w.data;
  m.scale_inv = w.scale_inv, m.scale_cols = w.scale_cols;
  m.block_rows = w.block_rows, m.block_cols = w.block_cols, m.row_offset = w.row_offset;
  m.tile_exp = w.tile_exp;
  return m;
}

// Issue 16: GGUF block types (the tiles stored at load among them); issue
// 18: FP8 when asked.
bool UsesInt8Products(const Weight& w, const MatMulOptions& o) {
  return (IsBlockType(w.dtype) && !o.exact_block_activations) || (w.dtype == DType::kF8E4M3 && o.int8_fp8);
}

// 64-byte aligned: vector loads of activations that straddle cache lines
// halve the kernels' streaming speed.
float* ThreadScratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + 16) buf.resize(n + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t{63});
}

namespace {

bool UseBf16(const Weight& w, const MatMulOptions& o) { return o.bf16_activations && cpu::MatMulBf16Supports(w.dtype); }

// Rows [r0, r1) of one product with the kernel its format and options call for.
void MatMulRange(const MatMulJob& j, int64_t r0, int64_t r1, const MatMulOptions& o) {
  const cpu::MatRef m = ToMatRef(*j.w);
  if (UsesInt8Products(*j.w, o)) {  // issue 16: int8 activations for GGUF block types
    float* scratch = ThreadScratch(cpu::QuantInt8ScratchFloats(m, j.n));
    cpu::QuantInt8MatMulRows(m, j.x, j.x_stride, j.n, j.y, j.y_stride, r0, r1, scratch);
  } else if (UseBf16(*j.w, o)) {
    float* scratch = ThreadScratch(cpu::MatMulBf16ScratchFloats(m, j.n));
    cpu::MatMulBf16Rows(m, j.x, j.x_stride, j.n, j.y, j.y_stride, r0, r1, scratch);
  } else {
    float* scratch = ThreadScratch(cpu::MatMulScratchFloats(m, j.n));
    cpu::MatMulRows(m, j.x, j.x_stride, j.n, j.y, j.y_stride, r0, r1, scratch);
  }
}

void GateUpRange(const GateUpJob& j, int64_t r0, int64_t r1, const MatMulOptions& o) {
  if (UseBf16(*j.gate, o) || UsesInt8Products(*j.gate, o)) {  // issue 16: int8 for GGUF block types
    MatMulRange({j.gate, j.x, j.x_stride, j.y, j.y_stride, j.n}, r0, r1, o);
    MatMulRange({j.up, j.x, j.x_stride, j.tmp, j.y_stride, j.n}, r0, r1, o);
    for (int64_t t = 0; t < j.n; ++t) cpu::SiluMul(j.y + t * j.y_stride + r0, j.tmp + t * j.y_stride + r0, r1 - r0);
    return;
  }
  const cpu::MatRef g = ToMatRef(*j.gate), u = ToMatRef(*j.up);
  float* scratch = ThreadScratch(cpu::MatMulScratchFloats(g, j.n));
  cpu::GateUpSiluRows(g, u, j.x, j.x_stride, j.n, j.y, j.tmp, j.y_stride, r0, r1, scratch);
}

// Splits the concatenated rows of `count` jobs over the threads by cost and
// calls run(job, r0, r1) for each piece. Rows are cut at multiples of 32
// (tiles stored at load, kI8T32 and kQ8_0T32; 16 and 4 for other kernels).
template <class RowsOf, class CostOf, class Run>
void SplitRows(int64_t count, const RowsOf& rows_of, const CostOf& cost_of, const Run& run) {
  double total = 0.0;
  for (int64_t j = 0; j < count; ++j) total += cost_of(j) * static_cast<double>(rows_of(j));
  // (job, row) where a fraction f of the cost is reached.
  auto locate = [&](double f) -> std::pair<int64_t, int64_t> {
    double target = total * f;
    for (int64_t j = 0; j < count; ++j) {
      const double c = cost_of(j) * static_cast<double>(rows_of(j));
      if (target < c) {
        const int64_t r = static_cast<int64_t>(target / cost_of(j)) / 32 * 32;
        return {j, std::min(r, rows_of(j))};
      }
      target -= c;
    }
    return {count, 0};
  };
  ParallelRun(total > 2e5, [&](int t, int nt) {
    auto [j0, r0] = t == 0 ? std::pair<int64_t, int64_t>{0, 0} : locate(static_cast<double>(t) / nt);
    const auto [j1, r1] = t + 1 == nt ? std::pair<int64_t, int64_t>{count, 0} : locate(static_cast<double>(t + 1) / nt);
    for (int64_t j = j0; j < count && (j < j1 || (j == j1 && r0 < r1)); ++j) {
      const int64_t end = j == j1 ? r1 : rows_of(j);
      if (r0 < end) run(j, r0, end);
      r0 = 0;
    }
  });
}

// Relative cost of one output row: bytes streamed for few tokens, multiply-
// adds for many.
double RowCost(const Weight& w, int64_t n, const MatMulOptions& o) {
  const double bytes = static_cast<double>(w.bytes_per_row()) / static_cast<double>(std::max<int64_t>(w.cols, 1));
  // The int8 kernels stream a byte in about the time of three tokens' work
  // on it (one core: 1 token ~130 GB/s from L2, ~40 GB/s from DRAM; many
  // tokens cost about half a token each in passes of six), so with few
  // tokens a row costs its bytes, not its tokens: counting tokens gave the
  // thread with the 3-token experts of a batch-16 decode step too few bytes,
  // and the other waited (bench-moe FP8 --int8-fp8 batch 16, two threads,
  // same run: 288-291 -> 315-325 tok/s; OpenMP barrier waits 10.7% -> 3%).
  if (UsesInt8Products(w, o)) return static_cast<double>(w.cols) * std::max(3.0 * bytes, 0.5 * static_cast<double>(n));
  return static_cast<double>(w.cols) * (bytes * 0.25 + static_cast<double>(n));  // bytes: block types too
}

}  // namespace

bool CanStoreTiles(const Weight& w) { return cpu::StoredTilesSupport(ToMatRef(w)); }
int64_t StoredTilesBytes(const Weight& w) { return cpu::StoredTilesBytes(ToMatRef(w)); }
int64_t StoredTilesExpBytes(const Weight& w) { return cpu::StoredTilesExpBytes(ToMatRef(w)); }

Weight StoreTiles(const Weight& w, uint8_t* dst, uint8_t* exps) {
  const cpu::MatRef m = ToMatRef(w);
  ParallelFor(cpu::StoredTiles(w.rows), 16, [&](int64_t t0, int64_t t1) {
    cpu::PackStoredTiles(m, t0, t1, dst, exps, ThreadScratch(cpu::PackStoredTilesScratchFloats(w.cols)));
  });
  Weight packed = w;
  packed.dtype = cpu::StoredTilesType(w.dtype), packed.data = dst;
  packed.tile_exp = w.dtype == DType::kF8E4M3 ? exps : nullptr;
  return packed;
}

void MatMul(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n,
            const MatMulOptions& options) {
  const MatMulJob job{&w, x, x_stride, y, y_stride, n};
  MatMulBatch({&job, 1}, options);
}

void MatMulBatch(std::span<const MatMulJob> jobs, const MatMulOptions& options) {
  for (const MatMulJob& j : jobs)  // formats without a SIMD kernel: scalar reference, threaded inside
    if (j.n > 0 && !cpu::MatMulSupports(j.w->dtype) && !UseBf16(*j.w, options)) {
      if (options.bf16_activations)
        ref::MatMulBf16Activations(*j.w, j.x, j.x_stride, j.y, j.y_stride, j.n);
      else
        ref::MatMul(*j.w, j.x, j.x_stride, j.y, j.y_stride, j.n);
    }
  auto simd = [&](int64_t i) {
    const MatMulJob& j = jobs[i];
    return j.n > 0 && (cpu::MatMulSupports(j.w->dtype) || UseBf16(*j.w, options));
  };
  SplitRows(
      static_cast<int64_t>(jobs.size()), [&](int64_t i) { return simd(i) ? jobs[i].w->rows : int64_t{0}; },
      [&](int64_t i) { return RowCost(*jobs[i].w, jobs[i].n, options); },
      [&](int64_t i, int64_t r0, int64_t r1) { MatMulRange(jobs[i], r0, r1, options); });
}

void GateUpSiluBatch(std::span<const GateUpJob> jobs, const MatMulOptions& options) {
  auto simd = [&](int64_t i) {
    const GateUpJob& j = jobs[i];
    return j.n > 0 && j.gate->dtype == j.up->dtype && (cpu::MatMulSupports(j.gate->dtype) || UseBf16(*j.gate, options));
  };
  for (int64_t i = 0; i < static_cast<int64_t>(jobs.size()); ++i)
    if (jobs[i].n > 0 && !simd(i)) ref::GateUpSilu(jobs[i]);
  SplitRows(
      static_cast<int64_t>(jobs.size()), [&](int64_t i) { return simd(i) ? jobs[i].gate->rows : int64_t{0}; },
      [&](int64_t i) { return 2.0 * RowCost(*jobs[i].gate, jobs[i].n, options); },
      [&](int64_t i, int64_t r0, int64_t r1) { GateUpRange(jobs[i], r0, r1, options); });
}

void MatMulTransposed(const Weight& w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n) {
  ref::MatMulTransposed(w, x, x_stride, y, y_stride, n);
}

void RmsNorm(const float* x, int64_t x_stride, const float* weight, float eps, float* out, int64_t out_stride,
             int64_t n, int64_t d) {
  ParallelFor(n, std::max<int64_t>(1, 32768 / std::max<int64_t>(d, 1)), [&](int64_t t0, int64_t t1) {
    cpu::RmsNorm(x + t0 * x_stride, x_stride, weight, eps, out + t0 * out_stride, out_stride, t1 - t0, d);
  });
}

void SiluMul(float* gate, const float* up, int64_t n, int64_t d) { cpu::SiluMul(gate, up, n * d); }

void RopeInterleaved(float* x, const float* cos, const float* sin, int64_t dim) {
  cpu::RopeInterleaved(x, cos, sin, dim);
}

void Softmax(float* x, int64_t n) { cpu::Softmax(x, n); }
float Dot(const float* a, const float* b, int64_t n) { return cpu::Dot(a, b, n); }
void Axpy(float a, const float* x, float* y, int64_t n) { cpu::Axpy(a, x, y, n); }
void Add(const float* x, float* y, int64_t n) { cpu::Add(x, y, n); }

void EncodeF8E4M3(const float* x, int64_t n, float scale, uint8_t* out) { cpu::EncodeF8E4M3(x, n, scale, out); }
float AbsMax(const float* x, int64_t n) { return cpu::AbsMax(x, n); }

const char* KernelTarget() { return cpu::TargetName(); }
bool HasVdpbf16ps() { return cpu::HasAvx512Bf16(); }
double MeasureReadBandwidth(int threads, int64_t bytes, int reps) {
  return cpu::MeasureReadBandwidth(threads, bytes, reps);
}
double MeasureFmaPeak(int threads) { return cpu::MeasureFmaPeak(threads); }

void MlaAttention(int64_t rc, int64_t dr, float scale, int64_t heads, const float* q,
                  std::span<const AttentionBlock> blocks, float* o) {
  // Tasks: (block, up to 16 tokens, a range of heads), dealt out dynamically
  // since later positions cost more. Each task reads its slot's cache once,
  // so heads are split only as far as needed to give every thread work
  // (decode of a few sequences), in whole groups of 8.
  struct Task {
    int64_t block, offset, count, h0, h1;
  };
  thread_local std::vector<Task> tasks;
  tasks.clear();
  constexpr int64_t kTokens = 16, kHeads = 8;
  int64_t token_tasks = 0;
  for (const AttentionBlock& b : blocks) token_tasks += (b.count + kTokens - 1) / kTokens;
  const int64_t groups = (heads + kHeads - 1) / kHeads;
  const int64_t splits = std::clamp<int64_t>((NumThreads() + token_tasks - 1) / std::max<int64_t>(token_tasks, 1), 1,
                                             groups);
  const int64_t step = (groups + splits - 1) / splits * kHeads;
  for (int64_t b = 0; b < static_cast<int64_t>(blocks.size()); ++b)
    for (int64_t off = blocks[b].count; off > 0;) {  // latest tokens first: costliest first
      const int64_t c = std::min(kTokens, off);
      off -= c;
      for (int64_t h0 = 0; h0 < heads; h0 += step) tasks.push_back({b, off, c, h0, std::min(heads, h0 + step)});
    }
  const int64_t lat = rc + dr;
  const cpu::MlaShape shape{rc, dr, scale};
  const std::vector<Task>& list = tasks;
  ParallelForDynamic(static_cast<int64_t>(list.size()), [&](int64_t i, int) {
    const Task& t = list[i];
    const AttentionBlock& b = blocks[t.block];
    const int64_t first = b.first + t.offset;
    const cpu::LatentRows rows{b.rows.f32, b.rows.f8, b.rows.f8_scale, b.rows.stride};
    float* scratch = ThreadScratch(cpu::MlaScratchFloats(shape, t.count, t.h1 - t.h0));
    cpu::MlaAttention(shape, q + first * heads * lat, heads * lat, t.count, b.p0 + t.offset, t.h0, t.h1, rows,
                      o + first * heads * rc, heads * rc, scratch);
  });
}

}  // namespace dsv3::ops
