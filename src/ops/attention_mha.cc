// The decompressed MLA attention op (ops::MhaAttention) and its scalar twin.
// The context is walked in chunks of kMhaChunk cache rows: each chunk is
// decoded to float32, expanded by kv_b_proj with the ordinary matrix
// product (so it runs on the same kernels and options as every linear
// layer), and then every head and query token of the block takes one
// streaming-softmax step over it (cpu/attention_mha.cc). A chunk is thus
// expanded once per call, and memory stays [chunk, H*(dn+dv)] whatever the
// context. Work is split over heads, and over query tokens too when there
// are fewer heads than threads to keep busy.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "cpu/kernels.h"
#include "ops/mat_ref.h"
#include "ops/ops.h"

namespace dsv3::ops {

namespace {

// One streaming-softmax step of queries [first, n) (those whose window
// reaches the chunk) over the chunk's keys. A task is one head and a run of
// queries: the head's keys are transposed once per task, so queries are
// split only as far as needed to give every thread two tasks.
void AttendChunk(const cpu::MhaShape& shape, const float* q, int64_t n, int64_t p0, int64_t first,
                 const cpu::MhaKeys& keys, const MhaBuffers& buf, float* o) {
  const int64_t H = shape.heads, q_stride = H * (shape.dn + shape.dr), o_stride = H * shape.dv;
  const int64_t m = n - first;
  const int64_t splits = std::clamp<int64_t>((2 * NumThreads() + H - 1) / H, 1, (m + 7) / 8);
  ParallelForDynamic(H * splits, [&](int64_t task, int) {
    const int64_t h = task % H, part = task / H;
    const int64_t i0 = first + m * part / splits, i1 = first + m * (part + 1) / splits;
    if (i0 >= i1) return;
    float* scratch = ThreadScratch(cpu::MhaScratchFloats(shape, keys.jn));
    cpu::MhaAttendChunk(shape, h, q + i0 * q_stride, q_stride, i1 - i0, p0 + i0, keys, buf.mx + i0 * H,
                        buf.sum + i0 * H, o + i0 * o_stride, o_stride, scratch);
  });
}

}  // namespace

void MhaAttention(const Weight& kv_b, const MatMulOptions& mm, const MhaShape& s, const float* q, int64_t n,
                  int64_t p0, const LatentRowsView& rows, const MhaBuffers& buf, float* o) {
  const int64_t H = s.heads, lat = s.rc + s.dr, kv_cols = H * (s.dn + s.dv), ctx = p0 + n;
  const cpu::MhaShape shape{H, s.dn, s.dr, s.dv, s.scale};
  const cpu::LatentRows latent{rows.f32, rows.f8, rows.f8_scale, rows.stride};
  std::fill(buf.mx, buf.mx + n * H, -std::numeric_limits<float>::infinity());
  std::fill(buf.sum, buf.sum + n * H, 0.0f);
  std::fill(o, o + n * H * s.dv, 0.0f);
  for (int64_t j0 = 0; j0 < ctx; j0 += kMhaChunk) {
    const int64_t jn = std::min(kMhaChunk, ctx - j0);
    // lat [jn, rc+dr], then kv [jn, H, dn+dv] = kv_b_proj(c)
    ParallelFor(jn, 32, [&](int64_t a, int64_t b) {
      cpu::DecodeLatentRows(latent, s.rc, s.dr, j0 + a, b - a, buf.lat + a * lat);
    });
    MatMul(kv_b, buf.lat, lat, buf.kv, kv_cols, jn, mm);
    const cpu::MhaKeys keys{buf.kv, kv_cols, buf.lat + s.rc, lat, j0, jn};
    AttendChunk(shape, q, n, p0, std::max<int64_t>(0, j0 - p0), keys, buf, o);
  }
  // o [n, H, dv] /= sum
  ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const float inv = 1.0f / buf.sum[i * H + h];
        float* oh = o + (i * H + h) * s.dv;
        for (int64_t d = 0; d < s.dv; ++d) oh[d] *= inv;
      }
  });
}

namespace ref {

void MhaAttention(const Weight& kv_b, const MhaShape& s, const float* q, int64_t n, int64_t p0,
                  const LatentRowsView& rows, float* o) {
  const int64_t H = s.heads, ctx = p0 + n, dq = s.dn + s.dr, kv_cols = H * (s.dn + s.dv);
  // kv [ctx, H, dn+dv] = kv_b_proj(c); k_pe [ctx, dr]
  std::vector<float> c(s.rc), w(s.rc), kv(ctx * kv_cols), k_pe(ctx * s.dr), scores(ctx);
  for (int64_t j = 0; j < ctx; ++j) {
    for (int64_t k = 0; k < s.rc; ++k) c[k] = LatentValue(rows, j, k, s.rc);
    for (int64_t k = 0; k < s.dr; ++k) k_pe[j * s.dr + k] = LatentValue(rows, j, s.rc + k, s.rc);
    for (int64_t r = 0; r < kv_cols; ++r) {
      DecodeRow(kv_b, r, w.data());
      kv[j * kv_cols + r] = Dot(w.data(), c.data(), s.rc);
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      const float* qh = q + (i * H + h) * dq;
      const int64_t len = p0 + i + 1;
      for (int64_t j = 0; j < len; ++j) {
        const float* k_nope = kv.data() + j * kv_cols + h * (s.dn + s.dv);
        scores[j] = s.scale * (Dot(qh, k_nope, s.dn) + Dot(qh + s.dn, k_pe.data() + j * s.dr, s.dr));
      }
      Softmax(scores.data(), len);
      float* oh = o + (i * H + h) * s.dv;
      std::fill(oh, oh + s.dv, 0.0f);
      for (int64_t j = 0; j < len; ++j) Axpy(scores[j], kv.data() + j * kv_cols + h * (s.dn + s.dv) + s.dn, oh, s.dv);
    }
}

}  // namespace ref
}  // namespace dsv3::ops
