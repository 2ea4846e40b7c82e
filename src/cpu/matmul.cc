// Matrix products y = x W^T over weights in their stored format (F32, BF16,
// F16, FP8 e4m3 with block scales), decoded in registers, float32 products
// and sums. One kernel shape serves decode and prefill: a register tile of R
// weight rows x T tokens, each row chunk of 4 vectors decoded once and used
// for T tokens, dot products reduced at the end of a K block.
//
// Decoding FP8 in two instructions per vector: e4m3 byte q placed in the top
// byte of a 32-bit lane, arithmetic shift right by 4 and masked, is the float
// with sign and the 7 magnitude bits moved to bits 26..20, which is exactly
// q * 2^-120 (normals and subnormals alike). The 2^-120 and the block scale
// are folded into a scaled copy of the activations (xs = x * s * 2^64, one
// pass per 128-row block) and the output (* 2^56). The byte->lane spreading
// uses in-block interleaves, so lanes hold a fixed permutation of a 4N-weight
// chunk; the activations are permuted the same way once per call.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/matmul.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace dsv3::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kTokenBlock = 64;  // tokens whose activations are prepared together
constexpr int64_t kKBlock = 1024;   // columns per K block when tokens span several tiles
constexpr int64_t kSegmentRows = 128;






#define DSV3_PF_LOCALITY 3
constexpr int64_t kPrefetchBytes = 4096;
// From this many tokens on, weights are decoded in natural lane order (no
// permuted activation copy) and the tile is kRowsMany rows x kTokensMany
// tokens (4 x 6 measured best of 2x8, 3x8, 4x6, 4x4, 1x16 on Zen 5). The
// one-row tile's time grows linearly with its tokens (one accumulator chain
// per token), so it only serves single tokens: 4 tokens on the 4-row tile
// take 0.48x the time (BM_MatMul, docs/performance.md).
constexpr int64_t kManyTokens = 2;
constexpr int kRowsMany = 4;
constexpr int64_t kTokensMany = 6;

// ---- Decoders: 4N stored weights -> 4 float vectors (lane order: Perm). ----

struct DecF8 {
  static constexpr int64_t kBytes = 1;
  static constexpr bool kPermuted = true, kScaled = true;
  // 64 bytes -> 4 vectors in 10 instructions: bytes to the high half of
  // 16-bit lanes (2 zips), sign | magnitude << 4 there (shift + and, on 32
  // weights at a time), then 16-bit halves to the high half of 32-bit lanes
  // (4 zips): the float bits of q * 2^-120.
  static HWY_INLINE void Load4(DF df, const uint8_t* p, VF* v) {
    const hn::Repartition<uint8_t, DF> d8;
    const hn::Repartition<uint16_t, DF> d16;
    const hn::Repartition<int16_t, DF> di16;
    const hn::Repartition<uint32_t, DF> d32;
    const auto q = hn::LoadU(d8, p);
    const auto mask = hn::Set(di16, static_cast<int16_t>(0x87F0));
    auto f = [&](hn::Vec<decltype(d16)> w) {  // q << 8 -> sign | magnitude << 4
      return hn::BitCast(d16, hn::And(hn::ShiftRight<4>(hn::BitCast(di16, w)), mask));
    };
    const auto lo = f(hn::ZipLower(d16, hn::Zero(d8), q));
    const auto hi = f(hn::ZipUpper(d16, hn::Zero(d8), q));
    const auto z16 = hn::Zero(d16);
    v[0] = hn::BitCast(df, hn::ZipLower(d32, z16, lo));
    v[1] = hn::BitCast(df, hn::ZipUpper(d32, z16, lo));
    v[2] = hn::BitCast(df, hn::ZipLower(d32, z16, hi));
    v[3] = hn::BitCast(df, hn::ZipUpper(d32, z16, hi));
  }
  // Chunk element held by lane i of vector j (N lanes).
  static size_t Perm(size_t N, size_t j, size_t i) { return 16 * (i / 4) + 4 * j + i % 4; }
  static float Scalar(const uint8_t* row, int64_t k) { return std::ldexp(F8E4M3ToF32(row[k]), -120); }
};

struct DecBf16 {
  static constexpr int64_t kBytes = 2;
  static constexpr bool kPermuted = true, kScaled = false;
  static HWY_INLINE void Load4(DF df, const uint8_t* p, VF* v) {
    const hn::Repartition<uint16_t, DF> d16;
    const hn::Repartition<uint32_t, DF> d32;
    const uint16_t* q = reinterpret_cast<const uint16_t*>(p);
    const auto a = hn::LoadU(d16, q), b = hn::LoadU(d16, q + hn::Lanes(d16));
    const auto z = hn::Zero(d16);
    v[0] = hn::BitCast(df, hn::ZipLower(d32, z, a));
    v[1] = hn::BitCast(df, hn::ZipUpper(d32, z, a));
    v[2] = hn::BitCast(df, hn::ZipLower(d32, z, b));
    v[3] = hn::BitCast(df, hn::ZipUpper(d32, z, b));
  }
  static size_t Perm(size_t N, size_t j, size_t i) { return (j / 2) * 2 * N + 8 * (i / 4) + 4 * (j % 2) + i % 4; }
  static float Scalar(const uint8_t* row, int64_t k) {
    return Bf16ToF32(reinterpret_cast<const uint16_t*>(row)[k]);
  }
};

// Natural lane order (no activation permutation): one widening per vector.
// Used for many tokens, where decoding is amortised over the token tile and
// skipping the permuted activation copy matters more.
struct DecF8Natural {
  static constexpr int64_t kBytes = 1;
  static constexpr bool kPermuted = false, kScaled = true;
  static HWY_INLINE void Load4(DF df, const uint8_t* p, VF* v) {
    const hn::Rebind<int8_t, DF> d8;
    const hn::RebindToSigned<DF> di;
    const size_t N = hn::Lanes(df);
    const auto mask = hn::Set(di, static_cast<int32_t>(0x87F00000u));
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; ++j) {
      const auto q = hn::PromoteTo(di, hn::LoadU(d8, reinterpret_cast<const int8_t*>(p) + j * N));
      v[j] = hn::BitCast(df, hn::And(hn::ShiftLeft<20>(q), mask));  // sign | magnitude << 20
    }
  }
  static size_t Perm(size_t N, size_t j, size_t i) { return j * N + i; }
  static float Scalar(const uint8_t* row, int64_t k) { return DecF8::Scalar(row, k); }
};

struct DecBf16Natural {
  static constexpr int64_t kBytes = 2;
  static constexpr bool kPermuted = false, kScaled = false;
  static HWY_INLINE void Load4(DF df, const uint8_t* p, VF* v) {
    const hn::Rebind<hwy::bfloat16_t, DF> db;
    const hwy::bfloat16_t* q = reinterpret_cast<const hwy::bfloat16_t*>(p);
    const size_t N = hn::Lanes(df);
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; ++j) v[j] = hn::PromoteTo(df, hn::LoadU(db, q + j * N));
  }
  static size_t Perm(size_t N, size_t j, size_t i) { return j * N + i; }
  static float Scalar(const uint8_t* row, int64_t k) { return DecBf16::Scalar(row, k); }
};

struct DecF16 {
  static constexpr int64_t kBytes = 2;
  static constexpr bool kPermuted = false, kScaled = false;
  static HWY_INLINE void Load4(DF df, const uint8_t* p, VF* v) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    const hwy::float16_t* q = reinterpret_cast<const hwy::float16_t*>(p);
    const size_t N = hn::Lanes(df);
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; ++j) v[j] = hn::PromoteTo(df, hn::LoadU(dh, q + j * N));
  }
  static size_t Perm(size_t N, size_t j, size_t i) { return j * N + i; }
  static float Scalar(const uint8_t* row, int64_t k) { return F16ToF32(reinterpret_cast<const uint16_t*>(row)[k]); }
};

struct DecF32 {
  static constexpr int64_t kBytes = 4;
  static constexpr bool kPermuted = false, kScaled = false;
  static HWY_INLINE void Load4(DF df, const uint8_t* p, VF* v) {
    const float* q = reinterpret_cast<const float*>(p);
    const size_t N = hn::Lanes(df);
#pragma GCC unroll 4
    for (size_t j = 0; j < 4; ++j) v[j] = hn::LoadU(df, q + j * N);
  }
  static size_t Perm(size_t N, size_t j, size_t i) { return j * N + i; }
  static float Scalar(const uint8_t* row, int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

// ---- The register tile ----

// out[t * R + i] = sum over `chunks` chunks of row i . xs[t]. S independent
// accumulators per (row, token) hide FMA latency when R * T is small.
template <class Dec, int R, int T, int S>
HWY_INLINE void Tile(const uint8_t* w0, int64_t row_bytes, const float* xs, int64_t xs_stride, int64_t chunks,
                     float* HWY_RESTRICT out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const int64_t chunk_bytes = 4 * N * Dec::kBytes;
  // Every loop below has compile-time bounds and must be fully unrolled so
  // the accumulators live in registers (GCC keeps arrays in memory otherwise).
  VF acc[R][T][S];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 16
      for (int s = 0; s < S; ++s) acc[i][t][s] = hn::Zero(df);
  for (int64_t c = 0; c < chunks; ++c) {
    VF w[R][4];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      // Several rows read in lockstep defeat the hardware prefetcher: fetch
      // the next tile's rows at this offset ourselves.
      if (R > 1) hwy::Prefetch(w0 + (i + R) * row_bytes + c * chunk_bytes);
      // One row at a time: the weights are one sequential stream, but over
      // 4 KiB pages of the page cache the hardware prefetcher restarts at
      // every page; keep kPrefetchBytes in flight ourselves.
      if (R == 1 && kPrefetchBytes > 0) __builtin_prefetch(w0 + c * chunk_bytes + kPrefetchBytes, 0, DSV3_PF_LOCALITY);
      Dec::Load4(df, w0 + i * row_bytes + c * chunk_bytes, w[i]);
    }
    const float* xc = xs + c * 4 * N;
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 16
      for (int j = 0; j < 4; ++j) {
        const VF xv = hn::LoadU(df, xc + t * xs_stride + j * N);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) acc[i][t][j % S] = hn::MulAdd(w[i][j], xv, acc[i][t][j % S]);
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      VF sum = acc[i][t][0];
#pragma GCC unroll 16
      for (int s = 1; s < S; ++s) sum = hn::Add(sum, acc[i][t][s]);
      out[t * R + i] = hn::GetLane(hn::SumOfLanes(df, sum));
    }
}

// `groups` consecutive tiles of R rows: out [groups, T, R].
template <class Dec, int R, int T>
void TileFn(const uint8_t* w0, int64_t row_bytes, const float* xs, int64_t xs_stride, int64_t chunks, int64_t groups,
            float* out) {
  constexpr int S = T == 1 ? 4 : (T == 2 && R == 1) ? 2 : 1;
  for (int64_t g = 0; g < groups; ++g)
    Tile<Dec, R, T, S>(w0 + g * R * row_bytes, row_bytes, xs, xs_stride, chunks, out + g * R * T);
}

using TileFnPtr = void (*)(const uint8_t*, int64_t, const float*, int64_t, int64_t, int64_t, float*);

// Row-tile height 1 for few tokens (one sequential weight stream per thread
// keeps DRAM prefetch effective), kRowsMany x kTokensMany for many (decoded
// weights reused across a wider token tile).
template <class Dec, int R, size_t... Ts>
constexpr std::array<TileFnPtr, sizeof...(Ts) + 1> TileTable(std::index_sequence<Ts...>) {
  return {nullptr, TileFn<Dec, R, static_cast<int>(Ts) + 1>...};
}

template <class Dec>
TileFnPtr PickTile(int rows, int64_t tokens) {
  static constexpr auto kOne =
      TileTable<Dec, 1>(std::make_index_sequence<std::max<size_t>(kManyTokens - 1, kTokensMany)>());
  static constexpr auto kMany = TileTable<Dec, kRowsMany>(std::make_index_sequence<kTokensMany>());
  return rows == 1 ? kOne[tokens] : kMany[tokens];
}

// ---- The driver: token blocks x K blocks x row segments x tiles ----

template <class Dec>
class Runner {
 public:
  Runner(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* scratch)
      : w_(w), x_(x), x_stride_(x_stride), n_(n) {
    const DF df;
    N_ = static_cast<int64_t>(hn::Lanes(df));
    chunk_ = 4 * N_;
    tb_ = std::min<int64_t>(n, kTokenBlock);
    max_t_ = n < kManyTokens ? n : kTokensMany;
    row_tile_ = n < kManyTokens ? 1 : kRowsMany;
    kc_ = (tb_ <= max_t_ || w.cols <= kKBlock) ? w.cols : kKBlock;
    xp_ = scratch;
    // Rows of prepared activations start on cache lines, padded so that rows
    // 4 KiB apart do not share L1 sets.
    ld_ = (kc_ + 15) / 16 * 16 + 16;
    xs_ = scratch + tb_ * ld_;
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t i = 0; i < N_; ++i) perm_[j * N_ + i] = static_cast<int32_t>(Dec::Perm(N_, j, i));
  }

  // Products for rows [r0, r1) of all n tokens into y.
  void Run(int64_t r0, int64_t r1, float* y, int64_t y_stride) {
    if (w_.cols == 0) {  // empty sums
      for (int64_t t = 0; t < n_; ++t) std::fill(y + t * y_stride + r0, y + t * y_stride + r1, 0.0f);
      return;
    }
    for (int64_t t0 = 0; t0 < n_; t0 += tb_) {
      const int64_t tn = std::min(tb_, n_ - t0);
      for (int64_t k0 = 0; k0 < w_.cols; k0 += kc_) {
        const int64_t kn = std::min(kc_, w_.cols - k0);
        Prepare(t0, tn, k0, kn);
        for (int64_t s0 = r0; s0 < r1;) {
          const int64_t s1 = SegmentEnd(s0, r1);
          Segment(s0, s1, t0, tn, k0, kn, y + t0 * y_stride, y_stride, k0 > 0);
          s0 = s1;
        }
      }
    }
  }

 private:
  int64_t SegmentEnd(int64_t s0, int64_t r1) const {
    const int64_t end = std::min(r1, s0 + kSegmentRows);
    if (!Dec::kScaled) return end;
    const int64_t abs = w_.row_offset + s0;
    return std::min(end, s0 + (w_.block_rows - abs % w_.block_rows));
  }

  // src_ = activations of tokens t0.. from column k0 in lane order: x itself
  // for natural-order decoders, else a permuted copy xp [tn, kn].
  void Prepare(int64_t t0, int64_t tn, int64_t k0, int64_t kn) {
    const float* x0 = x_ + t0 * x_stride_ + k0;
    if (!Dec::kPermuted && (Dec::kScaled || (reinterpret_cast<uintptr_t>(x0) % 64 == 0 && x_stride_ % 16 == 0))) {
      src_ = x0, src_stride_ = x_stride_;  // read in place (FP8 reads the scaled copy anyway)
      return;
    }
    src_ = xp_, src_stride_ = ld_;
    const int64_t full = kn / chunk_ * chunk_;
    for (int64_t t = 0; t < tn; ++t) {
      const float* src = x_ + (t0 + t) * x_stride_ + k0;
      float* dst = xp_ + t * ld_;
      if (!Dec::kPermuted) {  // an aligned copy
        std::copy_n(src, kn, dst);
        continue;
      }
      for (int64_t c = 0; c < full; c += chunk_)
        for (int64_t e = 0; e < chunk_; ++e) dst[c + e] = src[c + perm_[e]];
      std::copy(src + full, src + kn, dst + full);
    }
  }

  // xs = src * block scale * 2^64 for the row block of segment row s0 (FP8);
  // returns the activations the tiles read and their stride.
  std::pair<const float*, int64_t> Scale(int64_t s0, int64_t tn, int64_t k0, int64_t kn) {
    if (!Dec::kScaled) return {src_, src_stride_};
    const DF df;
    const float* srow = w_.scale_inv + ((w_.row_offset + s0) / w_.block_rows) * w_.scale_cols;
    const float up = std::ldexp(1.0f, 64);
    const int64_t full = kn / chunk_ * chunk_;
    const bool chunk_uniform = w_.block_cols % chunk_ == 0 && k0 % w_.block_cols % chunk_ == 0;
    for (int64_t t = 0; t < tn; ++t) {
      const float* src = src_ + t * src_stride_;
      float* dst = xs_ + t * ld_;
      int64_t c = 0;
      if (chunk_uniform) {
        for (; c < full; c += chunk_) {
          const VF s = hn::Set(df, srow[(k0 + c) / w_.block_cols] * up);
          for (int64_t j = 0; j < 4; ++j) hn::StoreU(hn::Mul(hn::LoadU(df, src + c + j * N_), s), df, dst + c + j * N_);
        }
      } else {
        for (; c < full; ++c) dst[c] = src[c] * srow[(k0 + c / chunk_ * chunk_ + perm_[c % chunk_]) / w_.block_cols] * up;
      }
      for (; c < kn; ++c) dst[c] = src[c] * srow[(k0 + c) / w_.block_cols] * up;
    }
    return {xs_, ld_};
  }

  void Segment(int64_t s0, int64_t s1, int64_t t0, int64_t tn, int64_t k0, int64_t kn, float* y, int64_t y_stride,
               bool accumulate) {
    const auto [xs, xs_stride] = Scale(s0, tn, k0, kn);
    const float out_scale = Dec::kScaled ? std::ldexp(1.0f, 56) : 1.0f;
    const int64_t chunks = kn / chunk_, tail = kn - chunks * chunk_;
    const int64_t row_bytes = w_.cols * Dec::kBytes;
    const uint8_t* base = static_cast<const uint8_t*>(w_.data) + k0 * Dec::kBytes;
    float out[kSegmentRows * std::max<int64_t>(kTokensMany, kManyTokens)];  // [rows, T] per token tile
    const int64_t rows = s1 - s0;
    for (int64_t tt = 0; tt < tn; tt += max_t_) {
      const int64_t T = std::min(max_t_, tn - tt);
      // Full tiles of row_tile_ rows, then single rows.
      const int64_t full = row_tile_ > 1 ? rows / row_tile_ * row_tile_ : rows;
      const float* xt = xs + tt * xs_stride;
      if (full > 0)
        PickTile<Dec>(static_cast<int>(row_tile_), T)(base + s0 * row_bytes, row_bytes, xt, xs_stride, chunks,
                                                      full / row_tile_, out);
      if (full < rows)
        PickTile<Dec>(1, T)(base + (s0 + full) * row_bytes, row_bytes, xt, xs_stride, chunks, rows - full,
                            out + full * T);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t R = r < full ? row_tile_ : 1, g0 = r < full ? r / R * R : r;
        const uint8_t* row = base + (s0 + r) * row_bytes;
        for (int64_t t = 0; t < T; ++t) {
          float v = out[g0 * T + t * R + (r - g0)];
          for (int64_t k = chunks * chunk_; k < chunks * chunk_ + tail; ++k)
            v += Dec::Scalar(row, k) * xt[t * xs_stride + k];
          float& dst = y[(tt + t) * y_stride + s0 + r];
          dst = accumulate ? dst + v * out_scale : v * out_scale;
        }
      }
    }
  }

  const MatRef& w_;
  const float* x_;
  int64_t x_stride_, n_;
  int64_t N_ = 0, chunk_ = 0, tb_ = 0, max_t_ = 0, row_tile_ = 1, kc_ = 0, ld_ = 0;
  float* xp_ = nullptr;
  float* xs_ = nullptr;
  const float* src_ = nullptr;
  int64_t src_stride_ = 0;
  int32_t perm_[4 * 64] = {};
};

template <class Dec>
void MatMulTyped(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                 int64_t r0, int64_t r1, float* scratch) {
  Runner<Dec> run(w, x, x_stride, n, scratch);
  run.Run(r0, r1, y, y_stride);
}

void MatMulRowsImpl(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride,
                    int64_t r0, int64_t r1, float* scratch) {
  if (n <= 0 || r0 >= r1) return;
  switch (w.dtype) {
    case DType::kF8E4M3:
      if (n >= kManyTokens) return MatMulTyped<DecF8Natural>(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
      return MatMulTyped<DecF8>(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
    case DType::kBF16:
      if (n >= kManyTokens) return MatMulTyped<DecBf16Natural>(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
      return MatMulTyped<DecBf16>(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
    case DType::kF16: return MatMulTyped<DecF16>(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
    case DType::kF32: return MatMulTyped<DecF32>(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
    default: return;  // MatMulSupports() is false: the caller uses the scalar reference
  }
}

// y = silu(y) * tmp over tokens [t0, t0+tn) and rows [r0, r1).
void SiluMulRows(float* y, const float* tmp, int64_t y_stride, int64_t t0, int64_t tn, int64_t r0, int64_t r1);

template <class Dec>
void GateUpTyped(const MatRef& gate, const MatRef& up, const float* x, int64_t x_stride, int64_t n, float* y,
                 float* tmp, int64_t y_stride, int64_t r0, int64_t r1, float* scratch) {
  // Gate then up over one token block at a time, so both results are still
  // in cache when the SiLU product combines them.
  const int64_t tb = std::min<int64_t>(n, kTokenBlock);
  for (int64_t t0 = 0; t0 < n; t0 += tb) {
    const int64_t tn = std::min(tb, n - t0);
    Runner<Dec> g(gate, x + t0 * x_stride, x_stride, tn, scratch);
    g.Run(r0, r1, y + t0 * y_stride, y_stride);
    Runner<Dec> u(up, x + t0 * x_stride, x_stride, tn, scratch);
    u.Run(r0, r1, tmp + t0 * y_stride, y_stride);
    SiluMulRows(y, tmp, y_stride, t0, tn, r0, r1);
  }
}

void SiluMulRows(float* y, const float* tmp, int64_t y_stride, int64_t t0, int64_t tn, int64_t r0, int64_t r1) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF one = hn::Set(df, 1.0f);
  for (int64_t t = t0; t < t0 + tn; ++t) {
    float* g = y + t * y_stride;
    const float* u = tmp + t * y_stride;
    int64_t r = r0;
    for (; r + N <= r1; r += N) {
      const VF gv = hn::LoadU(df, g + r);
      const VF e = hn::Exp(df, hn::Neg(gv));
      hn::StoreU(hn::Mul(hn::Div(gv, hn::Add(one, e)), hn::LoadU(df, u + r)), df, g + r);
    }
    for (; r < r1; ++r) g[r] = g[r] / (1.0f + std::exp(-g[r])) * u[r];
  }
}

void GateUpSiluRowsImpl(const MatRef& gate, const MatRef& up, const float* x, int64_t x_stride, int64_t n,
                        float* y, float* tmp, int64_t y_stride, int64_t r0, int64_t r1, float* scratch) {
  if (n <= 0 || r0 >= r1) return;
  switch (gate.dtype) {
    case DType::kF8E4M3:
      if (n >= kManyTokens) return GateUpTyped<DecF8Natural>(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
      return GateUpTyped<DecF8>(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
    case DType::kBF16:
      if (n >= kManyTokens) return GateUpTyped<DecBf16Natural>(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
      return GateUpTyped<DecBf16>(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
    case DType::kF16: return GateUpTyped<DecF16>(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
    case DType::kF32: return GateUpTyped<DecF32>(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
    default: return;
  }
}

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace dsv3::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv3::cpu {

HWY_EXPORT(MatMulRowsImpl);
HWY_EXPORT(GateUpSiluRowsImpl);
HWY_EXPORT(TargetNameImpl);

const char* TargetName() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

bool MatMulSupports(DType t) {
  return t == DType::kF8E4M3 || t == DType::kBF16 || t == DType::kF16 || t == DType::kF32 ||
         IsBlockType(t);  // GGUF quants (issue 16): quant_matmul.cc
}

int64_t MatMulScratchFloats(const MatRef& w, int64_t n) {
  if (IsBlockType(w.dtype)) return QuantMatMulScratchFloats(w, n);  // GGUF quants (issue 16)
  return 2 * std::min<int64_t>(n, 64) * ((w.cols + 15) / 16 * 16 + 16) + 64;
}

void MatMulRows(const MatRef& w, const float* x, int64_t x_stride, int64_t n, float* y, int64_t y_stride, int64_t r0,
                int64_t r1, float* scratch) {
  if (IsBlockType(w.dtype)) return QuantMatMulRows(w, x, x_stride, n, y, y_stride, r0, r1, scratch);  // GGUF quants (issue 16)
  HWY_DYNAMIC_DISPATCH(MatMulRowsImpl)(w, x, x_stride, n, y, y_stride, r0, r1, scratch);
}

void GateUpSiluRows(const MatRef& gate, const MatRef& up, const float* x, int64_t x_stride, int64_t n, float* y,
                    float* tmp, int64_t y_stride, int64_t r0, int64_t r1, float* scratch) {
  if (IsBlockType(gate.dtype)) {  // GGUF quants (issue 16): both products, then silu(gate) * up
    QuantMatMulRows(gate, x, x_stride, n, y, y_stride, r0, r1, scratch);
    QuantMatMulRows(up, x, x_stride, n, tmp, y_stride, r0, r1, scratch);
    for (int64_t t = 0; t < n; ++t) SiluMul(y + t * y_stride + r0, tmp + t * y_stride + r0, r1 - r0);
    return;
  }
  HWY_DYNAMIC_DISPATCH(GateUpSiluRowsImpl)(gate, up, x, x_stride, n, y, tmp, y_stride, r0, r1, scratch);
}

}  // namespace dsv3::cpu
#endif  // HWY_ONCE
