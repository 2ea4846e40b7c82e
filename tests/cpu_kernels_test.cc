// Every SIMD kernel (cpu/) against its scalar twin (ops::ref, core/dtype.h)
// on every Highway target compiled in and supported here, over sizes 0..2N
// and odd tails, every weight dtype, FP8 partial blocks and row views.
// Bounds are stated per kernel: float32 kernels may differ from the twin only
// by summation order (a few ulp of sum |terms|).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/parallel.h"
#include "cpu/kernels.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"
#include "hwy_test_util.h"

namespace dsv3 {

using ops::ToMatRef;
namespace {


std::vector<float> Random(int64_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A weight of `dtype` [rows, cols] (FP8: block scales of `block` x `block`),
// its storage kept alive in the struct.
struct TestWeight {
  Weight w;
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};

TestWeight MakeWeight(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng, int64_t block = 128) {
  TestWeight t;
  const std::vector<float> v = Random(rows * cols, rng, 0.05f);
  t.w.dtype = dtype, t.w.rows = rows, t.w.cols = cols;
  t.bytes.resize(rows * cols * DTypeSize(dtype) + 1);
  if (dtype == DType::kF8E4M3) {
    const int64_t sr = (rows + block - 1) / block, sc = (cols + block - 1) / block;
    t.scales.resize(sr * sc);
    std::uniform_real_distribution<float> s(1e-4f, 2e-3f);
    for (float& x : t.scales) x = s(rng);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        t.bytes[r * cols + c] = F32ToF8E4M3(v[r * cols + c] / t.scales[(r / block) * sc + c / block]);
    t.w.scale_inv = t.scales.data(), t.w.scale_cols = sc, t.w.block_rows = block, t.w.block_cols = block;
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (dtype == DType::kF32) std::memcpy(&t.bytes[4 * i], &v[i], 4);
    if (dtype == DType::kBF16) {
      const uint16_t b = F32ToBf16(v[i]);
      std::memcpy(&t.bytes[2 * i], &b, 2);
    }
    if (dtype == DType::kF16) {
      const uint16_t h = F32ToF16(v[i]);
      std::memcpy(&t.bytes[2 * i], &h, 2);
    }
  }
  t.w.data = t.bytes.data();
  return t;
}

// sum_k |w[r, k] x[t, k]|: the scale of rounding differences in y[t, r].
float AbsDot(const Weight& w, const float* x, int64_t r) {
  std::vector<float> row(w.cols);
  ops::DecodeRow(w, r, row.data());
  float s = 0.0f;
  for (int64_t k = 0; k < w.cols; ++k) s += std::fabs(row[k] * x[k]);
  return s;
}

void ExpectMatMulMatches(const Weight& w, int64_t n, std::mt19937& rng, const std::string& what) {
  const int64_t x_stride = w.cols + 3, y_stride = w.rows + 2;
  const std::vector<float> x = Random(n * x_stride + 1, rng);
  std::vector<float> want(n * y_stride + 1, 0.0f), got(n * y_stride + 1, -7.0f);
  ops::ref::MatMul(w, x.data(), x_stride, want.data(), y_stride, n);
  std::vector<float> scratch(cpu::MatMulScratchFloats(ToMatRef(w), n));
  // Two row ranges, as two threads would split them (at an odd row).
  const int64_t mid = w.rows / 2 + (w.rows > 2 ? 1 : 0);
  cpu::MatMulRows(ToMatRef(w), x.data(), x_stride, n, got.data(), y_stride, 0, mid, scratch.data());
  cpu::MatMulRows(ToMatRef(w), x.data(), x_stride, n, got.data(), y_stride, mid, w.rows, scratch.data());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < w.rows; ++r) {
      const float tol = 4e-6f * AbsDot(w, x.data() + t * x_stride, r) + 1e-30f;
      ASSERT_NEAR(got[t * y_stride + r], want[t * y_stride + r], tol) << what << " t=" << t << " r=" << r;
    }
}

TEST(CpuMatMul, MatchesScalarTwinEveryDtypeAndShape) {
  std::mt19937 rng(1);
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3};
  const int64_t cols_list[] = {0, 1, 7, 16, 31, 64, 65, 127, 128, 129, 200, 263};
  const int64_t rows_list[] = {1, 2, 3, 17, 131};
  const int64_t n_list[] = {1, 2, 3, 7, 8, 9, 17};
  ForEachTarget([&] {
    for (DType dt : dtypes)
      for (int64_t cols : cols_list)
        for (int64_t rows : rows_list) {
          TestWeight t = MakeWeight(dt, rows, cols, rng);
          for (int64_t n : n_list)
            ExpectMatMulMatches(t.w, n, rng,
                                std::string(DTypeName(dt)) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                                    " n=" + std::to_string(n));
        }
  });
}

TEST(CpuMatMul, ManyTokensKBlocksAndRowViews) {
  std::mt19937 rng(2);
  ForEachTarget([&] {
    for (DType dt : {DType::kF8E4M3, DType::kBF16}) {
      // More tokens than one token block (64) and more columns than one K block (1024).
      TestWeight big = MakeWeight(dt, 70, 1100, rng);
      ExpectMatMulMatches(big.w, 70, rng, "k-blocks " + std::string(DTypeName(dt)));
      // A view of rows starting inside an FP8 row block (scales by absolute row).
      TestWeight t = MakeWeight(dt, 300, 160, rng);
      const Weight view = t.w.Rows(100, 150);
      ExpectMatMulMatches(view, 5, rng, "view " + std::string(DTypeName(dt)));
      ExpectMatMulMatches(view, 20, rng, "view many " + std::string(DTypeName(dt)));
    }
    // Block sizes other than 128 (64: half a chunk on AVX-512; 48: not a multiple of it).
    for (int64_t block : {64, 48}) {
      TestWeight t = MakeWeight(DType::kF8E4M3, 100, 200, rng, block);
      ExpectMatMulMatches(t.w, 3, rng, "block " + std::to_string(block));
      ExpectMatMulMatches(t.w, 12, rng, "block many " + std::to_string(block));
    }
  });
}

TEST(CpuMatMul, GateUpSiluMatchesTwin) {
  std::mt19937 rng(3);
  ForEachTarget([&] {
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF8E4M3})
      for (int64_t n : {1, 5, 70}) {
        TestWeight g = MakeWeight(dt, 45, 130, rng), u = MakeWeight(dt, 45, 130, rng);
        const std::vector<float> x = Random(n * 130, rng);
        std::vector<float> want(n * 45), want_tmp(n * 45), got(n * 45), tmp(n * 45);
        ops::ref::GateUpSilu({&g.w, &u.w, x.data(), 130, want.data(), want_tmp.data(), 45, n});
        std::vector<float> scratch(cpu::MatMulScratchFloats(ToMatRef(g.w), n));
        cpu::GateUpSiluRows(ToMatRef(g.w), ToMatRef(u.w), x.data(), 130, n, got.data(), tmp.data(), 45, 0, 45,
                            scratch.data());
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < 45; ++r) {
            // Error of silu(g) u from errors of g and u (silu' <= 1.1).
            const float gv = want[t * 45 + r] / want_tmp[t * 45 + r];  // silu(g)
            const float eg = 4e-6f * AbsDot(g.w, x.data() + t * 130, r);
            const float eu = 4e-6f * AbsDot(u.w, x.data() + t * 130, r);
            const float tol = 1.1f * eg * std::fabs(want_tmp[t * 45 + r]) + std::fabs(gv) * eu + 1e-30f;
            ASSERT_NEAR(got[t * 45 + r], want[t * 45 + r], tol) << DTypeName(dt) << " n=" << n << " t=" << t;
          }
      }
  });
}

TEST(CpuMatMul, Bf16ActivationsMatchTwin) {
  std::mt19937 rng(4);
  for (bool vdp : {false, true}) {
    if (vdp && !cpu::HasAvx512Bf16()) continue;
    for (DType dt : {DType::kBF16, DType::kF8E4M3})
      for (int64_t cols : {1, 31, 32, 64, 129, 256, 300})
        for (int64_t n : {1, 3, 9, 70}) {
          TestWeight t = MakeWeight(dt, 19, cols, rng);
          const std::vector<float> x = Random(n * cols, rng);
          std::vector<float> want(n * 19), got(n * 19);
          ops::ref::MatMulBf16Activations(t.w, x.data(), cols, want.data(), 19, n);
          std::vector<float> scratch(cpu::MatMulBf16ScratchFloats(ToMatRef(t.w), n));
          cpu::MatMulBf16Rows(ToMatRef(t.w), x.data(), cols, n, got.data(), 19, 0, 19, scratch.data(), vdp);
          for (int64_t tk = 0; tk < n; ++tk)
            for (int64_t r = 0; r < 19; ++r) {
              float sub = 0.0f;  // contribution of subnormal e4m3 weights
              const float abs = AbsDot(t.w, x.data() + tk * cols, r);
              if (dt == DType::kF8E4M3)
                for (int64_t k = 0; k < cols; ++k)
                  if ((t.bytes[r * cols + k] & 0x78) == 0)
                    sub += std::fabs(F8E4M3ToF32(t.bytes[r * cols + k]) * t.w.Scale(r, k) * x[tk * cols + k]) * 1.01f;
              ASSERT_NEAR(got[tk * 19 + r], want[tk * 19 + r], 1e-5f * abs + sub + 1e-30f)
                  << (vdp ? "vdpbf16ps " : "twin ") << DTypeName(dt) << " cols=" << cols << " n=" << n;
            }
        }
  }
}

TEST(CpuElementwise, MatchScalarTwinsAllSizes) {
  std::mt19937 rng(5);
  ForEachTarget([&] {
    for (int64_t n = 0; n <= 2 * 64 + 3; ++n) {
      const std::vector<float> a = Random(n, rng), b = Random(n, rng);
      float abs = 0.0f;
      for (int64_t i = 0; i < n; ++i) abs += std::fabs(a[i] * b[i]);
      ASSERT_NEAR(cpu::Dot(a.data(), b.data(), n), ops::ref::Dot(a.data(), b.data(), n), 2e-6f * abs + 1e-30f) << n;
      std::vector<float> y1 = b, y2 = b;
      cpu::Axpy(0.37f, a.data(), y1.data(), n);
      ops::ref::Axpy(0.37f, a.data(), y2.data(), n);
      // One rounding (fused) or two: within an ulp of |a x| + |y|.
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y1[i], y2[i], 2.4e-7f * (std::fabs(0.37f * a[i]) + std::fabs(b[i])));
      y1 = b;
      cpu::Add(a.data(), y1.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(y1[i], a[i] + b[i]);
      // SiLU product: exp() differs by a few ulp.
      std::vector<float> g1 = a, g2 = a;
      cpu::SiluMul(g1.data(), b.data(), n);
      ops::ref::SiluMul(g2.data(), b.data(), 1, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(g1[i], g2[i], 1e-6f * (std::fabs(g2[i]) + 1e-6f)) << n;
      // Softmax.
      std::vector<float> s1 = a, s2 = a;
      for (float& v : s1) v *= 10.0f;
      for (float& v : s2) v *= 10.0f;
      cpu::Softmax(s1.data(), n);
      ops::ref::Softmax(s2.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(s1[i], s2[i], 2e-6f * s2[i] + 1e-9f) << n;
      // RMSNorm (aliased in place too).
      if (n > 0) {
        const std::vector<float> w = Random(n, rng);
        std::vector<float> o1(n), o2(n), inplace = a;
        cpu::RmsNorm(a.data(), n, w.data(), 1e-6f, o1.data(), n, 1, n);
        ops::ref::RmsNorm(a.data(), n, w.data(), 1e-6f, o2.data(), n, 1, n);
        cpu::RmsNorm(inplace.data(), n, w.data(), 1e-6f, inplace.data(), n, 1, n);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_NEAR(o1[i], o2[i], 2e-6f * std::fabs(o2[i]) + 1e-7f) << n;
          ASSERT_EQ(inplace[i], o1[i]);
        }
      }
      // RoPE over even dims.
      if (n % 2 == 0) {
        const std::vector<float> cs = Random(n / 2, rng), sn = Random(n / 2, rng);
        std::vector<float> r1 = a, r2 = a;
        cpu::RopeInterleaved(r1.data(), cs.data(), sn.data(), n);
        ops::ref::RopeInterleaved(r2.data(), cs.data(), sn.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(r1[i], r2[i], 1e-6f * (std::fabs(r2[i]) + 1.0f)) << n;
      }
    }
  });
}

// FP8 encoding must equal the scalar reference bit for bit: on a sweep of
// float bit patterns, on every exact midpoint between neighbouring e4m3
// values (ties to even), and on the special values.
TEST(CpuQuantize, EncodeF8MatchesReferenceExactly) {
  std::vector<float> xs;
  for (uint64_t u = 0; u < (1ull << 32); u += 65537) xs.push_back(BitsFloat(static_cast<uint32_t>(u)));
  for (int code = 0; code < 127; ++code) {
    const float a = F8E4M3ToF32(static_cast<uint8_t>(code)), b = F8E4M3ToF32(static_cast<uint8_t>(code + 1));
    const float mid = (a + b) / 2;
    for (float v : {a, b, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) xs.push_back(v), xs.push_back(-v);
  }
  for (float v : {448.0f, 464.0f, 465.0f, 1e30f, std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), std::ldexp(1.0f, -10), std::ldexp(1.0f, -6), 0.0f, -0.0f})
    xs.push_back(v), xs.push_back(-v);
  ForEachTarget([&] {
    std::vector<uint8_t> got(xs.size());
    cpu::EncodeF8E4M3(xs.data(), static_cast<int64_t>(xs.size()), 1.0f, got.data());
    for (size_t i = 0; i < xs.size(); ++i)
      ASSERT_EQ(got[i], F32ToF8E4M3(xs[i])) << "x=" << xs[i] << " bits=" << std::hex << FloatBits(xs[i]);
    // With a scale: e4m3(x / s).
    std::vector<uint8_t> scaled(200);
    cpu::EncodeF8E4M3(xs.data(), 200, 0.37f, scaled.data());
    for (size_t i = 0; i < 200; ++i) ASSERT_EQ(scaled[i], F32ToF8E4M3(xs[i] / 0.37f));
    const std::vector<float> a = {1.0f, -3.5f, 2.0f, 0.5f, -0.25f, 3.0f, 1.0f, 2.0f, 1.0f, -4.0f, 1.0f, 2.0f,
                                  1.0f, 2.0f, 1.0f, 2.0f, 1.0f, -9.0f, 1.0f};
    for (int64_t n = 0; n <= static_cast<int64_t>(a.size()); ++n) {
      float want = 0.0f;
      for (int64_t i = 0; i < n; ++i) want = std::max(want, std::fabs(a[i]));
      ASSERT_EQ(cpu::AbsMax(a.data(), n), want);
    }
  });
}

// Flash-style attention against the plain two-pass softmax, over contexts
// crossing the 64-row block, head counts crossing the 8-head group, float32
// and FP8 rows.
TEST(CpuAttention, MatchesTwoPassReference) {
  std::mt19937 rng(6);
  ForEachTarget([&] {
    for (int64_t rc : {16, 40, 128})
      for (int64_t dr : {8, 6})
        for (bool f8 : {false, true}) {
          const int64_t lat = rc + dr, H = 11, len = 150;
          const std::vector<float> rows_f = Random(len * lat, rng);
          std::vector<uint8_t> rows8(len * lat);
          std::vector<float> scales(2 * len);
          for (int64_t j = 0; j < len; ++j)
            for (int part = 0; part < 2; ++part) {
              const int64_t k0 = part ? rc : 0, k1 = part ? lat : rc;
              float amax = 0.0f;
              for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(rows_f[j * lat + k]));
              scales[2 * j + part] = amax / 448.0f;
              for (int64_t k = k0; k < k1; ++k) rows8[j * lat + k] = F32ToF8E4M3(rows_f[j * lat + k] / (amax / 448.0f));
            }
          ops::LatentRowsView view;
          view.stride = lat;
          if (f8) view.f8 = rows8.data(), view.f8_scale = scales.data();
          else view.f32 = rows_f.data();
          const cpu::LatentRows rows{view.f32, view.f8, view.f8_scale, view.stride};
          const int64_t m = 5;  // tokens at positions 1..5
          const std::vector<float> q = Random(m * H * lat, rng, 0.3f);
          std::vector<float> got(m * H * rc), want(m * H * rc);
          std::vector<float> scratch(cpu::MlaScratchFloats({rc, dr, 0.1f}, m, H));
          cpu::MlaAttention({rc, dr, 0.1f}, q.data(), H * lat, m, 1, 0, H, rows, got.data(), H * rc, scratch.data());
          for (int64_t i = 0; i < m; ++i)
            ops::ref::MlaAttention(rc, dr, 0.1f, q.data() + i * H * lat, 0, H, 1 + i, view, want.data() + i * H * rc);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 1e-5f * (std::fabs(want[i]) + 1.0f)) << "rc=" << rc << " f8=" << f8;
          // Any split of the tokens and heads gives the same bits: one token
          // at a time (decode), heads [0, 8) and [8, H) in separate calls, or
          // [0, 3) and [3, H) (each head in another place of its group of 8).
          for (int64_t cut : {8, 3}) {
            std::vector<float> split(m * H * rc);
            for (int64_t i = 0; i < m; ++i)
              for (auto [h0, h1] : {std::pair<int64_t, int64_t>{0, cut}, {cut, H}})
                cpu::MlaAttention({rc, dr, 0.1f}, q.data() + i * H * lat, H * lat, 1, 1 + i, h0, h1, rows,
                                  split.data() + i * H * rc, H * rc, scratch.data());
            ASSERT_EQ(split, got) << "rc=" << rc << " f8=" << f8 << " cut=" << cut;
          }
          // Long context: one token at the last position (3 blocks of 64).
          cpu::MlaAttention({rc, dr, 0.1f}, q.data(), H * lat, 1, len - 1, 3, H, rows, got.data(), H * rc,
                            scratch.data());
          ops::ref::MlaAttention(rc, dr, 0.1f, q.data(), 3, H, len - 1, view, want.data());
          for (int64_t i = 3 * rc; i < H * rc; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f * (std::fabs(want[i]) + 1.0f));
        }
  });
}

// Cache rows [len, rc+dr] as float32 and as e4m3 with a latent and a rotary
// scale per row (the KvCache layout), and a view of either.
struct TestRows {
  std::vector<float> f32, scales;
  std::vector<uint8_t> f8;
  ops::LatentRowsView View(bool use_f8, int64_t lat) const {
    ops::LatentRowsView v;
    v.stride = lat;
    if (use_f8) v.f8 = f8.data(), v.f8_scale = scales.data();
    else v.f32 = f32.data();
    return v;
  }
};

TestRows MakeRows(int64_t len, int64_t rc, int64_t dr, std::mt19937& rng) {
  const int64_t lat = rc + dr;
  TestRows t;
  t.f32 = Random(len * lat, rng);
  t.f8.resize(len * lat), t.scales.resize(2 * len);
  for (int64_t j = 0; j < len; ++j)
    for (int part = 0; part < 2; ++part) {
      const int64_t k0 = part ? rc : 0, k1 = part ? lat : rc;
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(t.f32[j * lat + k]));
      t.scales[2 * j + part] = amax / 448.0f;
      for (int64_t k = k0; k < k1; ++k) t.f8[j * lat + k] = F32ToF8E4M3(t.f32[j * lat + k] / (amax / 448.0f));
    }
  return t;
}

// The decompressed (per-head K/V) attention against its scalar twin (every
// row expanded at once, full softmax): contexts not a multiple of the
// 256-row chunk, a prefix already in the cache (p0 > 0), one query (decode),
// dimensions that leave vector tails, float32 and FP8 rows.
TEST(CpuAttention, DecompressedMatchesScalarTwin) {
  std::mt19937 rng(9);
  struct Dims {
    int64_t H, rc, dn, dr, dv;
  };
  float worst = 0.0f;
  ForEachTarget([&] {
    for (Dims d : {Dims{3, 48, 32, 16, 24}, Dims{2, 40, 20, 6, 36}, Dims{5, 64, 64, 32, 64}})
      for (auto [p0, n] : {std::pair<int64_t, int64_t>{0, 300}, {270, 33}, {250, 13}, {100, 1}, {0, 7}})
        for (bool f8 : {false, true}) {
          const int64_t ctx = p0 + n, lat = d.rc + d.dr, dq = d.dn + d.dr;
          const TestRows rows = MakeRows(ctx, d.rc, d.dr, rng);
          const TestWeight kv_b = MakeWeight(DType::kF32, d.H * (d.dn + d.dv), d.rc, rng);
          const std::vector<float> q = Random(n * d.H * dq, rng, 0.3f);
          const ops::MhaShape shape{d.H, d.rc, d.dn, d.dr, d.dv, 0.2f};
          std::vector<float> lat_buf(ops::kMhaChunk * lat), kv(ops::kMhaChunk * d.H * (d.dn + d.dv));
          std::vector<float> mx(n * d.H), sum(n * d.H), got(n * d.H * d.dv), want(n * d.H * d.dv);
          const ops::MhaBuffers buf{lat_buf.data(), kv.data(), mx.data(), sum.data()};
          ops::MhaAttention(kv_b.w, {}, shape, q.data(), n, p0, rows.View(f8, lat), buf, got.data());
          ops::ref::MhaAttention(kv_b.w, shape, q.data(), n, p0, rows.View(f8, lat), want.data());
          // Relative to the outputs' scale: summation order only.
          float max_diff = 0.0f, max_abs = 0.0f;
          for (size_t i = 0; i < got.size(); ++i)
            max_diff = std::max(max_diff, std::fabs(got[i] - want[i])), max_abs = std::max(max_abs, std::fabs(want[i]));
          worst = std::max(worst, max_diff / max_abs);
          EXPECT_LE(max_diff, 1e-5f * max_abs) << "H=" << d.H << " dv=" << d.dv << " p0=" << p0 << " n=" << n
                                               << " f8=" << f8;
        }
  });
  RecordProperty("worst_relative_error", std::to_string(worst));
  std::printf("  worst max|diff| / max|twin| = %.3g (bound 1e-5)\n", worst);
}

// A query's result does not depend on the thread count (which splits the
// queries into different register tiles): bit-identical outputs, as the
// expert-parallel runs (one thread per rank) compare bit for bit with one
// process. Head counts that do and do not divide the threads, dv with a
// scalar tail.
TEST(CpuAttention, DecompressedSameBitsForAnyThreadCount) {
  std::mt19937 rng(11);
  const int threads = NumThreads();
  for (int64_t H : {3, 4}) {
    const int64_t rc = 48, dn = 32, dr = 16, dv = 24, p0 = 5, n = 64, lat = rc + dr, ctx = p0 + n;
    const TestRows rows = MakeRows(ctx, rc, dr, rng);
    const TestWeight kv_b = MakeWeight(DType::kF32, H * (dn + dv), rc, rng);
    const std::vector<float> q = Random(n * H * (dn + dr), rng, 0.3f);
    const ops::MhaShape shape{H, rc, dn, dr, dv, 0.2f};
    std::vector<float> lat_buf(ops::kMhaChunk * lat), kv(ops::kMhaChunk * H * (dn + dv)), mx(n * H), sum(n * H);
    const ops::MhaBuffers buf{lat_buf.data(), kv.data(), mx.data(), sum.data()};
    std::vector<float> first(n * H * dv), got(n * H * dv);
    for (int t : {1, 2, 3, 5}) {
      SetNumThreads(t);
      ops::MhaAttention(kv_b.w, {}, shape, q.data(), n, p0, rows.View(false, lat), buf, got.data());
      if (t == 1) first = got;
      EXPECT_EQ(std::memcmp(first.data(), got.data(), got.size() * sizeof(float)), 0) << "H=" << H << " threads=" << t;
    }
  }
  SetNumThreads(threads);
}

// Cache rows decoded to float32 exactly as the twin's LatentValue does.
TEST(CpuAttention, DecodeLatentRowsMatchesTwin) {
  std::mt19937 rng(10);
  ForEachTarget([&] {
    for (int64_t rc : {16, 37, 512})
      for (int64_t dr : {6, 64}) {
        const int64_t lat = rc + dr, len = 9;
        const TestRows rows = MakeRows(len, rc, dr, rng);
        for (bool f8 : {false, true}) {
          const ops::LatentRowsView v = rows.View(f8, lat);
          std::vector<float> out((len - 2) * lat);
          cpu::DecodeLatentRows({v.f32, v.f8, v.f8_scale, v.stride}, rc, dr, 2, len - 2, out.data());
          for (int64_t j = 0; j < len - 2; ++j)
            for (int64_t k = 0; k < lat; ++k)
              ASSERT_EQ(out[j * lat + k], ops::ref::LatentValue(v, 2 + j, k, rc)) << "j=" << j << " k=" << k;
        }
      }
  });
}

}  // namespace
}  // namespace dsv3
