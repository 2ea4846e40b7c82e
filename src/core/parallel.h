// The threading primitives the engine uses, over OpenMP's persistent pool: a
// call in the token loop creates no threads and allocates nothing. The
// thread count is a process setting (`-t N`), set once at start-up.
// ParallelFor splits [0, n) into contiguous chunks; ParallelRun hands every
// thread its index (for callers that partition work themselves, e.g. by
// cost); ParallelForDynamic deals out items of uneven cost one at a time.
// All three run inline when called from inside a parallel region.
#pragma once

#include <omp.h>

#include <cstdint>

namespace dsv3 {

inline void SetNumThreads(int n) {
  if (n > 0) omp_set_num_threads(n);
}
inline int NumThreads() { return omp_get_max_threads(); }

// fn(begin, end) over disjoint ranges covering [0, n); serial when small.
template <typename Fn>
void ParallelFor(int64_t n, int64_t min_per_thread, Fn&& fn) {
  if (n <= 0) return;
  const int threads = omp_get_max_threads();
  if (threads <= 1 || n < 2 * min_per_thread || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) fn(begin, end);
  }
}

// fn(thread, threads) on every thread of the pool (or fn(0, 1) inline when
// `parallel` is false, there is one thread, or we are already parallel).
template <typename Fn>
void ParallelRun(bool parallel, Fn&& fn) {
  if (!parallel || omp_get_max_threads() <= 1 || omp_in_parallel()) {
    fn(0, 1);
    return;
  }
#pragma omp parallel
  fn(omp_get_thread_num(), omp_get_num_threads());
}

// fn(i, thread) for every i in [0, n), handed out one at a time.
template <typename Fn>
void ParallelForDynamic(int64_t n, Fn&& fn) {
  if (n <= 0) return;
  if (n == 1 || omp_get_max_threads() <= 1 || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) fn(i, omp_get_thread_num());
}

}  // namespace dsv3
