// Small layers' forward and backward; see layers.h.
#include "train/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "train/vec.h"

namespace dsv3::train {

namespace {
constexpr int64_t kChunk = 64;  // tokens per partial sum of a weight gradient
}  // namespace

void EmbeddingForward(const float* table, const int32_t* tokens, int64_t n, int64_t d, float* out, int64_t ldo) {
  ParallelFor(n, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::memcpy(out + i * ldo, table + tokens[i] * d, d * sizeof(float));
  });
}

void EmbeddingBackward(const float* dout, int64_t ldd, const int32_t* tokens, int64_t n, int64_t d, float* dtable) {
  // Serial: tokens repeat, and a fixed order keeps the sums reproducible.
  for (int64_t i = 0; i < n; ++i) {
    float* row = dtable + tokens[i] * d;
    const float* g = dout + i * ldd;
    for (int64_t j = 0; j < d; ++j) row[j] += g[j];
  }
}

void RmsNormForward(const float* x, int64_t ldx, const float* w, float eps, float* out, int64_t ldo, float* rstd,
                    int64_t n, int64_t d) {
  ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t t = i0; t < i1; ++t) {
      const float* xt = x + t * ldx;
      float* ot = out + t * ldo;
      float ss = 0.0f;  // same summation order as ops::RmsNorm
      for (int64_t i = 0; i < d; ++i) ss += xt[i] * xt[i];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
      for (int64_t i = 0; i < d; ++i) ot[i] = xt[i] * inv * w[i];
      rstd[t] = inv;
    }
  });
}

int64_t RmsNormScratch(int64_t n, int64_t d) { return (n + kChunk - 1) / kChunk * d; }

void RmsNormBackward(const float* dout, int64_t ldd, const float* x, int64_t ldx, const float* w, const float* rstd,
                     float* dx, int64_t lddx, bool accumulate, float* dw, float* chunk_scratch, int64_t n,
                     int64_t d) {
  // y_i = x_i r w_i, r = (mean x^2 + eps)^-1/2:
  // dx_i = r (g_i w_i) - r^3 / d * x_i * sum_j g_j w_j x_j ; dw_i = sum_t g_i x_i r.
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  ParallelFor(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* part = chunk_scratch + c * d;
      std::fill(part, part + d, 0.0f);
      for (int64_t t = c * kChunk; t < std::min(n, (c + 1) * kChunk); ++t) {
        const float* g = dout + t * ldd;
        const float* xt = x + t * ldx;
        const float r = rstd[t];
        float dot = 0.0f;
        for (int64_t i = 0; i < d; ++i) dot += g[i] * w[i] * xt[i];
        const float k = r * r * r * dot / static_cast<float>(d);
        float* o = dx + t * lddx;
        for (int64_t i = 0; i < d; ++i) {
          const float v = r * g[i] * w[i] - k * xt[i];
          o[i] = accumulate ? o[i] + v : v;
          part[i] += g[i] * xt[i] * r;
        }
      }
    }
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t i = 0; i < d; ++i) dw[i] += chunk_scratch[c * d + i];
}

void RopeForward(float* x, const float* cos, const float* sin, int64_t dim) {
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = a * sin[i] + b * cos[i];
  }
}

void RopeBackward(float* dx, const float* cos, const float* sin, int64_t dim) {
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float ga = dx[2 * i], gb = dx[2 * i + 1];
    dx[2 * i] = ga * cos[i] + gb * sin[i];
    dx[2 * i + 1] = -ga * sin[i] + gb * cos[i];
  }
}

void SiluMulForward(const float* gate, const float* up, float* act, int64_t n, int64_t f) {
  ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {  // vectorised (vec.cc); ops::SiluMul is the scalar twin
    SiluMulRow(gate + i0 * f, up + i0 * f, act + i0 * f, (i1 - i0) * f);
  });
}

void SiluMulBackward(const float* dact, const float* gate, const float* up, float* dgate, float* dup, int64_t n,
                     int64_t f) {
  ParallelFor(n, 16, [&](int64_t i0, int64_t i1) {
    SiluMulBackwardRow(dact + i0 * f, gate + i0 * f, up + i0 * f, dgate + i0 * f, dup + i0 * f, (i1 - i0) * f);
  });
}

double CrossEntropyForward(float* logits, const int32_t* targets, float* losses, int64_t n, int64_t V,
                           uint8_t* hits) {
  ParallelFor(n, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* z = logits + i * V;
      const float m = RowMax(z, V);
      const int32_t t = targets[i];
      const float zt = t < 0 ? 0.0f : z[t] - m;
      const double sum = ExpShiftSum(z, V, m);
      losses[i] = t < 0 ? 0.0f : static_cast<float>(std::log(sum) - zt);
      if (hits) hits[i] = t >= 0 && zt == 0.0f;  // the target's logit is the maximum
      ScaleRow(z, V, static_cast<float>(1.0 / sum));
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += losses[i];
  return total;
}

double SoftCrossEntropyForward(float* logits, const float* target_probs, const int32_t* rows, float* losses,
                               int64_t n, int64_t V, uint8_t* hits) {
  ParallelFor(n, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* z = logits + i * V;
      const float m = RowMax(z, V);
      const int64_t zmax = std::max_element(z, z + V) - z;
      double pz = 0.0;  // sum_v p_v (z_v - m)
      if (rows[i] >= 0) {
        const float* p = target_probs + rows[i] * V;
        for (int64_t v = 0; v < V; ++v) pz += static_cast<double>(p[v]) * (z[v] - m);
        if (hits) hits[i] = std::max_element(p, p + V) - p == zmax;
      } else if (hits) {
        hits[i] = 0;
      }
      const double sum = ExpShiftSum(z, V, m);
      losses[i] = rows[i] < 0 ? 0.0f : static_cast<float>(std::log(sum) - pz);  // log Z - sum p (z - m)
      ScaleRow(z, V, static_cast<float>(1.0 / sum));
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += losses[i];
  return total;
}

void SoftCrossEntropyBackward(float* probs, const float* target_probs, const int32_t* rows, float scale, int64_t n,
                              int64_t V) {
  ParallelFor(n, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* q = probs + i * V;
      if (rows[i] < 0) {
        std::fill(q, q + V, 0.0f);
        continue;
      }
      const float* p = target_probs + rows[i] * V;
      for (int64_t v = 0; v < V; ++v) q[v] = scale * (q[v] - p[v]);
    }
  });
}

void CrossEntropyBackward(float* probs, const int32_t* targets, float scale, int64_t n, int64_t V) {
  ParallelFor(n, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* p = probs + i * V;
      if (targets[i] < 0) {
        std::fill(p, p + V, 0.0f);
        continue;
      }
      for (int64_t v = 0; v < V; ++v) p[v] *= scale;
      p[targets[i]] -= scale;
    }
  });
}

}  // namespace dsv3::train
