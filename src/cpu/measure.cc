// The machine's limits the benchmarks compare against: sustained read
// bandwidth (best of several passes over a buffer much larger than the
// caches, each thread reading its own contiguous share, as a matrix-vector
// product does) and the float32 FMA peak of the widest vector unit.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/measure.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Sums n floats with 4 accumulators (the loads are the point).
float ReadSumImpl(const float* p, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Add(a0, hn::LoadU(df, p + i));
    a1 = hn::Add(a1, hn::LoadU(df, p + i + N));
    a2 = hn::Add(a2, hn::LoadU(df, p + i + 2 * N));
    a3 = hn::Add(a3, hn::LoadU(df, p + i + 3 * N));
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

// 12 independent FMA chains x `iters`; returns FLOPs done (and a sink value).
double FmaLoopImpl(int64_t iters, float* sink) {
  const DF df;
  VF a[12];
  for (int i = 0; i < 12; ++i) a[i] = hn::Set(df, 0.001f * static_cast<float>(i));
  const VF b = hn::Set(df, 0.9999f), c = hn::Set(df, 1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = hn::MulAdd(a[i], b, c);
  }
  VF s = a[0];
  for (int i = 1; i < 12; ++i) s = hn::Add(s, a[i]);
  *sink = hn::GetLane(s);
  return static_cast<double>(iters) * 12.0 * 2.0 * static_cast<double>(hn::Lanes(df));
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(ReadSumImpl);
HWY_EXPORT(FmaLoopImpl);

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

double MeasureReadBandwidth(int threads, int64_t bytes, int reps) {
  threads = std::max(threads, 1);
  const int64_t n = bytes / sizeof(float);
  void* mem = mmap(nullptr, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 0.0;
  madvise(mem, n * sizeof(float), MADV_HUGEPAGE);
  float* p = static_cast<float*>(mem);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = 1.0f;  // touch the pages from the threads that read them
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int r = 0; r < reps; ++r) {
    const double t0 = Now();
    float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      total += HWY_DYNAMIC_DISPATCH(ReadSumImpl)(p + b, e - b);
    }
    const double secs = Now() - t0;
    sink = sink + total;
    best = std::max(best, static_cast<double>(n) * sizeof(float) / secs);
  }
  munmap(mem, n * sizeof(float));
  return best;
}

double MeasureFmaPeak(int threads) {
  return BestPeakOf3(threads, 20000000,
                     [](int64_t iters, float* sink) { return HWY_DYNAMIC_DISPATCH(FmaLoopImpl)(iters, sink); });
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
