// Decode (1..7 tokens) over the 32-value block types Q4_0, Q5_0 and Q8_0
// with int8 activations (per 32 values d_t, as quant_int8.cc quantizes them:
// the same 32 values as a weight block). Why: the float32 path unpacked each
// block into floats and streamed ~10 GB/s per core, a third of the Q4_K
// kernels; Q8_0 files are common, and Q5_0 is where llama.cpp's quantizer
// puts rows that are not whole 256-blocks (bench-moe's expert down
// projections and attn_k_b in a Q4_K file).
//
// Four blocks (a quad: A, B, C, D) per step. The weights become unsigned
// u = level + bias (Q4_0: the nibble, bias 8; Q5_0: the nibble and the fifth
// bit, bias 16; Q8_0: q xor 0x80, bias 128) in two vectors, U0 = values
// 0..15 of A, B, C, D and U1 = values 16..31 (nibble types: one byte permute
// of two loads gathers them; Q8_0: lane shuffles of its four 32-byte level
// runs), the activations are arranged in the same order once per
// call, and two VPDPBUSD sum u * q into one integer vector whose dword lanes
// 4k..4k+3 belong to block k. The bias comes out in the integers: the sum
// starts at -(bias / 4) sum(q) per lane, so per block b
//   y += d_b d_tb (sum(u q) - bias sum(q))
// is one conversion, one product of the two scales and one FMA per token and
// quad. Half the vector operations of the earlier kernel (two blocks per
// step, the bias as a second FMA per token; the scales and Q5_0's fifth bits
// gathered with scalar loads, shifts and PDEP, which bounded it): Q5_0 from
// L2 at one token 24 -> 40 GB/s, Q4_0 23 -> 35. The twin does the same
// operations per lane and the same final reduction, so it gives the same bits.
#include "cpu/quant_decode32.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/ggml_quants.h"
#include "cpu/quant_int8_tile.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (quant_q4k_r4.cc)
#endif

namespace dsv3::cpu {

namespace {
// Per token and quad: q [128] bytes, d [16] floats, init [16] int32.
constexpr int64_t kQuadActBytes = 128 + 16 * 4 + 16 * 4;

int64_t Quads(int64_t cols) { return (cols / 32 + 3) / 4; }
int Bias(DType t) { return t == DType::kQ8_0 ? 128 : t == DType::kQ5_0 ? 16 : 8; }

// Lanes summed as the VNNI kernel does: halves, quarters, pairs, last two.
float ReduceLanes(const float* v) {
  float h[8], q[4];
  for (int k = 0; k < 8; ++k) h[k] = v[k] + v[k + 8];
  for (int k = 0; k < 4; ++k) q[k] = h[k] + h[k + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// u = level + bias of value e of one block.
uint8_t Biased(DType t, const uint8_t* blk, int e) {
  if (t == DType::kQ8_0) return static_cast<uint8_t>(blk[2 + e] ^ 0x80);
  const int qs = t == DType::kQ5_0 ? 6 : 2;
  const int nib = e < 16 ? blk[qs + e] & 0xF : blk[qs + e - 16] >> 4;
  if (t != DType::kQ5_0) return static_cast<uint8_t>(nib);
  uint32_t qh;
  std::memcpy(&qh, blk + 2, 4);
  return static_cast<uint8_t>(nib | (((qh >> e) & 1) << 4));
}
}  // namespace

bool Decode32Supports(DType t) { return t == DType::kQ4_0 || t == DType::kQ5_0 || t == DType::kQ8_0; }

int64_t Decode32ActBytes(int64_t n, int64_t cols) { return n * Quads(cols) * kQuadActBytes; }

namespace {
// Expand32Acts' byte order for the whole quads with AVX-512: the natural
// [A 0..31, B 0..31 | C 0..31, D 0..31] as 16-byte lanes 0 2 0 2 and 1 3 1 3.
__attribute__((target("avx512f,avx512bw"))) void ExpandQuadsAvx512(const int8_t* q, int64_t n, int64_t cols,
                                                                   int8_t* qx) {
  const int64_t quads = Quads(cols);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t g = 0; g < cols / 128; ++g) {
      const int8_t* src = q + t * cols + 128 * g;
      const __m512i n0 = _mm512_loadu_si512(src), n1 = _mm512_loadu_si512(src + 64);
      int8_t* out = qx + (t * quads + g) * 128;
      _mm512_storeu_si512(out, _mm512_shuffle_i64x2(n0, n1, _MM_SHUFFLE(2, 0, 2, 0)));
      _mm512_storeu_si512(out + 64, _mm512_shuffle_i64x2(n0, n1, _MM_SHUFFLE(3, 1, 3, 1)));
    }
}
}  // namespace

void Expand32Acts(DType t, const int8_t* q, const float* dg, const int32_t* sum16, int64_t n, int64_t cols,
                  Decode32Acts& a, uint8_t* buf, bool avx512) {
  const int64_t blocks = cols / 32, quads = Quads(cols);
  const int32_t bias4 = Bias(t) / 4;
  int8_t* qx = reinterpret_cast<int8_t*>(buf);
  float* d = reinterpret_cast<float*>(buf + n * quads * 128);
  int32_t* init = reinterpret_cast<int32_t*>(d + n * quads * 16);
  a.q = qx, a.d = d, a.init = init, a.n = n, a.cols = cols;
  if (avx512) ExpandQuadsAvx512(q, n, cols, qx);
  for (int64_t tk = 0; tk < n; ++tk)
    for (int64_t g = 0; g < quads; ++g) {
      const int64_t at = tk * quads + g;
      for (int k = 0; k < 4; ++k) {
        const int64_t b = 4 * g + k;
        const int8_t* src = q + tk * cols + 32 * b;
        const int32_t sum = b < blocks ? sum16[tk * (cols / 16) + 2 * b] + sum16[tk * (cols / 16) + 2 * b + 1] : 0;
        if (!avx512 || g >= blocks / 4)
          for (int e = 0; e < 32; ++e) qx[at * 128 + 64 * (e / 16) + 16 * k + e % 16] = b < blocks ? src[e] : 0;
        for (int l = 4 * k; l < 4 * k + 4; ++l) {
          d[at * 16 + l] = b < blocks ? dg[tk * blocks + b] : 0.0f;
          init[at * 16 + l] = -bias4 * sum;
        }
      }
    }
}

void Decode32Twin(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t blocks = w.cols / 32, quads = Quads(w.cols), bb = DTypeBlockBytes(w.dtype);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * blocks * bb;
    for (int64_t t = 0; t < a.n; ++t) {
      float acc[16] = {};
      for (int64_t g = 0; g < quads; ++g) {
        float dw[4] = {};
        uint8_t u[128] = {};
        for (int k = 0; k < 4 && 4 * g + k < blocks; ++k) {
          const uint8_t* blk = row + (4 * g + k) * bb;
          dw[k] = LoadHalf(blk);
          for (int e = 0; e < 32; ++e) u[64 * (e / 16) + 16 * k + e % 16] = Biased(w.dtype, blk, e);
        }
        const int64_t at = t * quads + g;
        const int8_t* qv = a.q + at * 128;
        for (int l = 0; l < 16; ++l) {
          int32_t isum = a.init[at * 16 + l];
          for (int i = 4 * l; i < 4 * l + 4; ++i) isum += u[i] * qv[i] + u[64 + i] * qv[64 + i];
          acc[l] = std::fma(static_cast<float>(isum), dw[l / 4] * a.d[at * 16 + l], acc[l]);
        }
      }
      y[t * y_stride + r] = ReduceLanes(acc);
    }
  }
}

namespace {
#define DSV3_D32_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2,f16c")))

DSV3_D32_TARGET inline float ReduceLanesVnni(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 s = _mm_add_ps(q, _mm_movehl_ps(q, q));  // q0 + q2, q1 + q3
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// Where a nibble-type quad's bytes lie, as indices into the 128 bytes loaded
// at the quad's start and at 4 bb - 64 (idx 64..127): U0's byte j is the qs
// byte of value j % 16 of block j / 16 (its high nibble is U1's), and the
// same loads give the lanes' f16 d (d, 16 lanes x 2 bytes) and, for Q5_0,
// the qh byte holding the fifth bit of U_h's byte j (qh[h], the bit in
// bit[h]).
struct QuadGather {
  __m512i idx, d, qh[2], bit[2];
  int64_t off1 = 0;
};

template <DType kType>
QuadGather MakeGather() {
  constexpr int64_t bb = DTypeBlockBytes(kType), qs = kType == DType::kQ5_0 ? 6 : 2, hi = 4 * bb - 64;
  QuadGather q;
  q.off1 = hi;
  alignas(64) uint8_t idx[64], d[64] = {}, qh[2][64], bit[2][64];
  auto at = [](int64_t src) { return static_cast<uint8_t>(src < 64 ? src : 64 + src - hi); };
  for (int j = 0; j < 64; ++j) {
    const int64_t k = j / 16, e = j % 16;
    idx[j] = at(bb * k + qs + e);
    for (int h = 0; h < 2; ++h) {
      qh[h][j] = at(bb * k + 2 + 2 * h + e / 8);
      bit[h][j] = static_cast<uint8_t>(1 << (e % 8));
    }
    if (j < 32) d[j] = at(bb * (j / 8) + j % 2);
  }
  std::memcpy(&q.idx, idx, 64), std::memcpy(&q.d, d, 64);
  std::memcpy(q.qh, qh, sizeof(qh)), std::memcpy(q.bit, bit, sizeof(bit));
  return q;
}

// Bytes [off, off + 64) of a quad that holds `valid` bytes (a whole quad: all).
DSV3_D32_TARGET inline __m512i LoadPart(const uint8_t* quad, int64_t off, int64_t valid, bool tail) {
  if (!tail) return _mm512_loadu_si512(quad + off);
  const int64_t c = std::clamp<int64_t>(valid - off, 0, 64);
  return _mm512_maskz_loadu_epi8(c == 64 ? ~0ull : (1ull << c) - 1, quad + off);
}

// Q8_0's U0, U1 and d: each block's 32 levels in one 32-byte load, their
// 16-byte halves regrouped by two lane shuffles, the f16 scales gathered in
// a scalar register. (The byte permute of four 64-byte loads, as for the
// nibble types, streamed Q8_0 from DRAM at 35 GB/s on one core, this 40.)
template <bool kTail>
DSV3_D32_TARGET inline __m512 Q8Levels(const uint8_t* quad, int nb, __m512i* u) {
  constexpr int64_t bb = DTypeBlockBytes(DType::kQ8_0);
  __m256i qs[4];
  uint64_t dd = 0;
  for (int k = 0; k < 4; ++k) {
    const bool here = !kTail || k < nb;
    qs[k] = here ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quad + k * bb + 2)) : _mm256_setzero_si256();
    uint16_t h = 0;
    if (here) std::memcpy(&h, quad + k * bb, 2);
    dd |= static_cast<uint64_t>(h) << (16 * k);
  }
  const __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(qs[0]), qs[1], 1);  // A 0..31, B 0..31
  const __m512i y = _mm512_inserti64x4(_mm512_castsi256_si512(qs[2]), qs[3], 1);  // C, D
  const __m512i flip = _mm512_set1_epi8(-128);
  u[0] = _mm512_xor_si512(_mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(2, 0, 2, 0)), flip);
  u[1] = _mm512_xor_si512(_mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(3, 1, 3, 1)), flip);
  const __m128 d4 = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(dd)));
  return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                               _mm512_castps128_ps512(d4));
}

// U0, U1 and the lanes' d of the nb (1..4) blocks at quad. Nibble types:
// all from two vector loads and byte permutes (gathering d and qh with
// scalar loads and shifts kept Q5_0 at 25 GB/s from L2).
template <DType kType, bool kTail>
DSV3_D32_TARGET inline __m512 QuadLevels(const uint8_t* quad, int nb, const QuadGather& gq, __m512i* u) {
  if constexpr (kType == DType::kQ8_0) {
    return Q8Levels<kTail>(quad, nb, u);
  } else {
    const int64_t valid = nb * DTypeBlockBytes(kType);
    const __m512i a0 = LoadPart(quad, 0, valid, kTail), a1 = LoadPart(quad, gq.off1, valid, kTail);
    const __m512i raw = _mm512_permutex2var_epi8(a0, gq.idx, a1), m4 = _mm512_set1_epi8(0x0F);
    u[0] = _mm512_and_si512(raw, m4), u[1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
    if constexpr (kType == DType::kQ5_0) {  // u <= 15: adding 16 sets the fifth bit
      for (int h = 0; h < 2; ++h) {
        const __mmask64 fifth = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(a0, gq.qh[h], a1), gq.bit[h]);
        u[h] = _mm512_mask_add_epi8(u[h], fifth, u[h], _mm512_set1_epi8(0x10));
      }
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(a0, gq.d, a1)));
  }
}

template <DType kType, int T, bool kTail>
DSV3_D32_TARGET inline void QuadStep(const uint8_t* quad, int nb, const QuadGather& gq, const Decode32Acts& a,
                                     int64_t quads, int64_t g, __m512* acc) {
  __m512i u[2];
  const __m512 dw = QuadLevels<kType, kTail>(quad, nb, gq, u);
  for (int t = 0; t < T; ++t) {
    const int64_t at = t * quads + g;
    __m512i isum = _mm512_loadu_si512(a.init + at * 16);
    isum = _mm512_dpbusd_epi32(isum, u[0], _mm512_loadu_si512(a.q + at * 128));
    isum = _mm512_dpbusd_epi32(isum, u[1], _mm512_loadu_si512(a.q + at * 128 + 64));
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_loadu_ps(a.d + at * 16)), acc[t]);
  }
}

template <DType kType, int T>
DSV3_D32_TARGET void DecodeRows(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0,
                                int64_t r1) {
  constexpr int64_t bb = DTypeBlockBytes(kType);
  const int64_t blocks = w.cols / 32, quads = Quads(w.cols), whole = blocks / 4;
  // Built once per type (the permute indices are constants of the block layout).
  static const QuadGather gq = kType == DType::kQ8_0 ? QuadGather() : MakeGather<kType>();
  const uint8_t* end = static_cast<const uint8_t*>(w.data) + r1 * blocks * bb;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * blocks * bb;
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t g = 0; g < whole; ++g) {
      PrefetchAhead(row + 4 * g * bb, 4 * bb, end);
      QuadStep<kType, T, false>(row + 4 * g * bb, 4, gq, a, quads, g, acc);
    }
    if (whole < quads)
      QuadStep<kType, T, true>(row + 4 * whole * bb, static_cast<int>(blocks - 4 * whole), gq, a, quads, whole, acc);
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = ReduceLanesVnni(acc[t]);
  }
}

template <DType kType>
void DecodeKind(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  const int64_t quads = Quads(w.cols);
  for (int64_t t0 = 0; t0 < a.n; t0 += 4) {
    Decode32Acts at = a;
    at.q = a.q + t0 * quads * 128, at.d = a.d + t0 * quads * 16, at.init = a.init + t0 * quads * 16;
    at.n = std::min<int64_t>(4, a.n - t0);
    float* yt = y + t0 * y_stride;
    switch (at.n) {
      case 1: DecodeRows<kType, 1>(w, at, yt, y_stride, r0, r1); break;
      case 2: DecodeRows<kType, 2>(w, at, yt, y_stride, r0, r1); break;
      case 3: DecodeRows<kType, 3>(w, at, yt, y_stride, r0, r1); break;
      default: DecodeRows<kType, 4>(w, at, yt, y_stride, r0, r1); break;
    }
  }
}
}  // namespace

void Decode32Vnni(const MatRef& w, const Decode32Acts& a, float* y, int64_t y_stride, int64_t r0, int64_t r1) {
  switch (w.dtype) {
    case DType::kQ4_0: return DecodeKind<DType::kQ4_0>(w, a, y, y_stride, r0, r1);
    case DType::kQ5_0: return DecodeKind<DType::kQ5_0>(w, a, y, y_stride, r0, r1);
    case DType::kQ8_0: return DecodeKind<DType::kQ8_0>(w, a, y, y_stride, r0, r1);
    default: return;  // Decode32Supports() is false
  }
}

}  // namespace dsv3::cpu
