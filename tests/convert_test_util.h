// Helpers shared by the conversion tests: scratch directories, running the
// converter, whole-sequence logits of a model and their comparison with the
// golden reference (worst relative error, argmax agreement).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace dsv3::testing_util {

inline std::string Golden(const std::string& name) { return std::string(DSV3_GOLDEN_DIR) + "/" + name; }
inline std::string GgufFixture(const std::string& name) { return std::string(DSV3_GOLDEN_DIR) + "/../gguf/" + name; }

// A fresh scratch directory per test.
inline std::string ScratchDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = std::string(DSV3_TEST_TMP) + "/" + info->test_suite_name() + "." + info->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline Expected<ConvertSummary> RunConvert(ConvertTarget to, const std::string& in, const std::string& out,
                                           ConvertOptions o = {}) {
  o.target = to;
  o.input = in;
  o.output = out;
  o.progress = false;
  return Convert(o);
}

struct GoldenLogits {
  std::unique_ptr<SafetensorsFile> file;
  int64_t B = 0, T = 0, V = 0;
  std::vector<int32_t> tokens;
  const float* logits = nullptr;      // [B, T, V]
  const float* mtp_logits = nullptr;  // [B, T-1, V] or null
};

inline GoldenLogits LoadGoldenLogits(const std::string& name) {
  GoldenLogits g;
  auto f = SafetensorsFile::Open(Golden(name) + "/golden.safetensors");
  EXPECT_TRUE(f.ok()) << f.status().message();
  g.file = std::move(f).value();
  const TensorInfo* t = g.file->Find("tokens");
  g.B = t->shape[0], g.T = t->shape[1];
  g.tokens.assign(reinterpret_cast<const int32_t*>(t->data), reinterpret_cast<const int32_t*>(t->data) + g.B * g.T);
  g.logits = reinterpret_cast<const float*>(g.file->Find("logits")->data);
  g.V = g.file->Find("logits")->shape[2];
  if (const TensorInfo* m = g.file->Find("mtp_logits")) g.mtp_logits = reinterpret_cast<const float*>(m->data);
  return g;
}

// Logits [B, T, V] of every position in one prefill; with `mtp`, the MTP
// module's logits [B, T-1, V] instead.
inline std::vector<float> AllLogits(const Model& m, const GoldenLogits& g, bool mtp = false) {
  const int64_t V = m.config().vocab_size, d = m.config().hidden_size, T = g.T;
  KvCache cache = m.NewCache(g.B, T);
  Workspace ws;
  Batch batch;
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t p = 0; p < T; ++p) batch.Add(g.tokens[b * T + p], p, b, true);
  EXPECT_TRUE(m.Forward(batch, cache, ws).ok());
  std::vector<float> out(ws.logits.begin(), ws.logits.begin() + g.B * T * V);
  if (!mtp) return out;
  const std::vector<float> hidden(ws.hidden.begin(), ws.hidden.begin() + g.B * T * d);
  KvCache mcache = m.NewCache(g.B, T);
  Batch mb;
  std::vector<float> h;
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t p = 0; p + 1 < T; ++p) {
      mb.Add(g.tokens[b * T + p + 1], p, b, true);
      h.insert(h.end(), hidden.begin() + (b * T + p) * d, hidden.begin() + (b * T + p + 1) * d);
    }
  EXPECT_TRUE(m.ForwardMtp(0, mb, h.data(), mcache, ws).ok());
  return std::vector<float>(ws.logits.begin(), ws.logits.begin() + g.B * (T - 1) * V);
}

struct Agreement {
  double worst_rel = 0;      // max over rows of max|got - want| / max(1, max|want|)
  int64_t argmax_diff = 0;   // rows whose argmax differs
  int64_t unexplained = 0;   // ...where want's top-2 gap exceeds 2 * that row's max|diff|
  int64_t rows = 0;
};

inline Agreement Compare(const float* got, const float* want, int64_t rows, int64_t V) {
  Agreement a;
  a.rows = rows;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = got + r * V;
    const float* y = want + r * V;
    float m = 1, d = 0;
    int64_t ax = 0, ay = 0;
    for (int64_t v = 0; v < V; ++v) {
      m = std::max(m, std::fabs(y[v]));
      d = std::max(d, std::fabs(x[v] - y[v]));
      if (x[v] > x[ax]) ax = v;
      if (y[v] > y[ay]) ay = v;
    }
    a.worst_rel = std::max(a.worst_rel, static_cast<double>(d / m));
    if (ax != ay) {
      ++a.argmax_diff;
      if (y[ay] - y[ax] > 2 * d) ++a.unexplained;
    }
  }
  return a;
}

inline void Report(const std::string& what, const Agreement& a) {
  std::printf("  %-58s worst rel %.3g, argmax differs %lld/%lld (%lld not near-ties)\n", what.c_str(), a.worst_rel,
              (long long)a.argmax_diff, (long long)a.rows, (long long)a.unexplained);
}

inline std::unique_ptr<Model> LoadModel(const std::string& path) {
  auto m = Model::Load(path);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Block-type weights on the exact path (float32 activations).
inline std::unique_ptr<Model> LoadExact(const std::string& path) {
  LoadOptions o;
  o.exact_block_activations = true;
  auto m = Model::Load(path, o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

// A quantized model (exact path) against the float path on its dequantized
// weights: whole-batch prefill, token-by-token decode, and the golden BF16 logits.
struct FloatPathAgreement {
  Agreement prefill, decode, golden;
};
inline std::vector<float> DecodeLogits(const Model& m, const GoldenLogits& g);
inline FloatPathAgreement CompareWithFloatPath(const Model& q, const Model& f, const GoldenLogits& g) {
  FloatPathAgreement a;
  a.prefill = Compare(AllLogits(q, g).data(), AllLogits(f, g).data(), g.B * g.T, g.V);
  const std::vector<float> dq = DecodeLogits(q, g), df = DecodeLogits(f, g);
  a.decode = Compare(dq.data(), df.data(), g.T, g.V);
  a.golden = Compare(AllLogits(q, g).data(), g.logits, g.B * g.T, g.V);
  return a;
}

// Logits of sequence 0 fed one token per Forward (decode).
inline std::vector<float> DecodeLogits(const Model& m, const GoldenLogits& g) {
  const int64_t V = m.config().vocab_size;
  KvCache cache = m.NewCache(1, g.T);
  Workspace ws;
  std::vector<float> out;
  for (int64_t p = 0; p < g.T; ++p) {
    Batch b;
    b.Add(g.tokens[p], p, 0, true);
    EXPECT_TRUE(m.Forward(b, cache, ws).ok());
    out.insert(out.end(), ws.logits.begin(), ws.logits.begin() + V);
  }
  return out;
}

}  // namespace dsv3::testing_util
