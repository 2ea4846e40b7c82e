// Blocked float32 GEMM (see gemm.h). Panels of B (kKc x NR) are packed into
// a contiguous buffer; a register-tile micro-kernel multiplies them with
// fused multiply-adds, broadcasting one A value (read in place, either
// layout) against NV vectors of B. Packing B and strided A reads absorb the
// transposes, so one kernel serves the three GEMMs of a linear layer. This
// file is compiled once per x86 target by Highway and dispatched at run time.
#include "train/gemm.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "train/gemm.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/aligned_allocator.h>

HWY_BEFORE_NAMESPACE();
namespace dsv3::train {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

// Register tile: kMr rows x kNv vectors of accumulators. AVX-512 has 32
// vector registers (24 accumulators + 4 B vectors + 1 broadcast); AVX2 has 16.
#if HWY_TARGET <= HWY_AVX3
constexpr int kMr = 6, kNv = 4;
#else
constexpr int kMr = 6, kNv = 2;
#endif
// Cache blocking: a kKc x NR panel of B stays in L1 while the A block
// (kMc x kKc) is re-read from L2; the B block (kKc x kNc) lives in L2/L3.
constexpr int64_t kKc = 128, kMc = 288, kNc = 1024;

// Aligned, grow-only per-thread pack buffer (no allocation in steady state).
float* PackBuffer(int64_t floats) {
  thread_local hwy::AlignedFreeUniquePtr<float[]> buf;
  thread_local int64_t size = 0;
  if (size < floats) {
    buf = hwy::AllocateAligned<float>(floats);
    size = floats;
  }
  return buf.get();
}

// acc [kMr x kNv*L] = sum_p A(i, p) (x) bp[p]; then C (+)= acc on rows < mr
// and columns < nr (a full tile goes straight to C with vector stores).
// A is read in place: A(i, p) = a[i * a_row + p * a_k] (rows past mr repeat
// the last valid row; their sums are discarded). Skipping an A pack matters
// for the trainer's skinny GEMMs (many tokens x few outputs), where packing
// A would cost as much as multiplying it.
HWY_INLINE void MicroKernel(int64_t kc, const float* a, int64_t a_row, int64_t a_k, const float* HWY_RESTRICT bp,
                            float* c, int64_t ldc, int64_t mr, int64_t nr, bool load_c) {
  const D d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const float* rows[kMr];
  for (int i = 0; i < kMr; ++i) rows[i] = a + std::min<int64_t>(i, mr - 1) * a_row;
  V acc[kMr][kNv];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < kNv; ++j) acc[i][j] = hn::Zero(d);
  for (int64_t p = 0, off = 0; p < kc; ++p, off += a_k) {
    V b[kNv];
#pragma GCC unroll 8
    for (int j = 0; j < kNv; ++j) b[j] = hn::Load(d, bp + j * L);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      const V av = hn::Set(d, rows[i][off]);
#pragma GCC unroll 8
      for (int j = 0; j < kNv; ++j) acc[i][j] = hn::MulAdd(av, b[j], acc[i][j]);
    }
    bp += kNv * L;
  }
  if (mr == kMr && nr == kNv * L) {
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < kNv; ++j) {
        float* cp = c + i * ldc + j * L;
        hn::StoreU(load_c ? hn::Add(hn::LoadU(d, cp), acc[i][j]) : acc[i][j], d, cp);
      }
    return;
  }
  HWY_ALIGN float tile[kMr * kNv * (HWY_MAX_BYTES / sizeof(float))];
  for (int i = 0; i < kMr; ++i)
    for (int j = 0; j < kNv; ++j) hn::Store(acc[i][j], d, tile + i * kNv * L + j * L);
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) {
      const float v = tile[i * kNv * L + j];
      c[i * ldc + j] = load_c ? c[i * ldc + j] + v : v;
    }
}

// bp: for each NR-column panel of op(B)[k0.., n0..], kc rows of NR values
// (columns past `nc` zero-filled).
void PackB(const GemmArgs& g, int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr_full, float* bp) {
  for (int64_t j0 = 0; j0 < nc; j0 += nr_full, bp += nr_full * kc) {
    const int64_t cols = std::min(nr_full, nc - j0);
    if (g.trans_b) {  // B stored [N, K]: one column of op(B) per stored row
      for (int64_t j = 0; j < nr_full; ++j) {
        if (j < cols) {
          const float* src = g.b + (n0 + j0 + j) * g.ldb + k0;
          for (int64_t p = 0; p < kc; ++p) bp[p * nr_full + j] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) bp[p * nr_full + j] = 0.0f;
        }
      }
    } else {  // B stored [K, N]: NR contiguous values per k
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.b + (k0 + p) * g.ldb + n0 + j0;
        float* dst = bp + p * nr_full;
        std::memcpy(dst, src, cols * sizeof(float));
        for (int64_t j = cols; j < nr_full; ++j) dst[j] = 0.0f;
      }
    }
  }
}

// C[m0:m1, n0:n1] of `g`, single-threaded.
void GemmBlock(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t nr = kNv * static_cast<int64_t>(hn::Lanes(D()));
  if (g.k == 0) {
    if (!g.accumulate)
      for (int64_t i = m0; i < m1; ++i) std::fill(g.c + i * g.ldc + n0, g.c + i * g.ldc + n1, 0.0f);
    return;
  }
  float* bp = PackBuffer(kKc * (kNc + nr));
  // op(A)(i, p): A stored [M, K] is a[i * lda + p]; stored [K, M], a[p * lda + i].
  const int64_t a_row = g.trans_a ? 1 : g.lda, a_k = g.trans_a ? g.lda : 1;
  for (int64_t jc = n0; jc < n1; jc += kNc) {
    const int64_t nc = std::min(kNc, n1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += kKc) {
      const int64_t kc = std::min(kKc, g.k - pc);
      const bool load_c = g.accumulate || pc > 0;
      PackB(g, pc, kc, jc, nc, nr, bp);
      for (int64_t ic = m0; ic < m1; ic += kMc) {
        const int64_t mc = std::min(kMc, m1 - ic);
        for (int64_t jr = 0; jr < nc; jr += nr)
          for (int64_t ir = 0; ir < mc; ir += kMr)
            MicroKernel(kc, g.a + (ic + ir) * a_row + pc * a_k, a_row, a_k, bp + jr * kc,
                        g.c + (ic + ir) * g.ldc + jc + jr, g.ldc, std::min<int64_t>(kMr, mc - ir),
                        std::min(nr, nc - jr), load_c);
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::train
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::train {

HWY_EXPORT(GemmBlock);

void GemmSerial(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  HWY_DYNAMIC_DISPATCH(GemmBlock)(g, 0, g.m, 0, g.n);
}

void Gemm(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  // Small products are not worth waking the other threads for.
  if (NumThreads() <= 1 || omp_in_parallel() || GemmFlops(g.m, g.n, g.k) < 4e5) return GemmSerial(g);
  // Split the larger output dimension in register-tile multiples (6 rows, 64
  // columns fit every target's tile), never the reduction.
  if (g.m >= g.n) {
    constexpr int64_t kRows = 6;
    ParallelFor((g.m + kRows - 1) / kRows, 1, [&](int64_t b0, int64_t b1) {
      HWY_DYNAMIC_DISPATCH(GemmBlock)(g, b0 * kRows, std::min(g.m, b1 * kRows), 0, g.n);
    });
  } else {
    constexpr int64_t kCols = 64;
    ParallelFor((g.n + kCols - 1) / kCols, 1, [&](int64_t b0, int64_t b1) {
      HWY_DYNAMIC_DISPATCH(GemmBlock)(g, 0, g.m, b0 * kCols, std::min(g.n, b1 * kCols));
    });
  }
}

void GemmReference(const GemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < g.k; ++p) {
        const float a = g.trans_a ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
        const float b = g.trans_b ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j];
        s += static_cast<double>(a) * b;
      }
      float& c = g.c[i * g.ldc + j];
      c = static_cast<float>(g.accumulate ? c + s : s);
    }
}

}  // namespace dsv3::train
#endif  // HWY_ONCE
