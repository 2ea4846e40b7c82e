// The one threading primitive the engine uses: split [0, n) into contiguous
// chunks over the worker threads. OpenMP keeps a persistent pool, so a call
// in the token loop creates no threads and allocates nothing. The thread
// count is a process setting (`-t N`), set once at start-up.
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

}  // namespace dsv3
