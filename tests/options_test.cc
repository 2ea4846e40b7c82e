// Reduced-precision options against the official golden logits, each with
// its own stated bound (the float32 path keeps the 1e-3 bound of
// golden_test). Error = max |logit - golden| / max(1, max |golden|) over
// every position of a prefill-then-decode run; the argmax must agree on at
// least the stated fraction of positions. Measured values (printed) are
// recorded in docs/performance.md; bounds leave about 2x headroom on the
// error. These tiny random models have many near-tied logits, so argmax
// agreement is a loose check; the error bound is the real one.
//
// Routing is discrete: a perturbed router logit can flip an expert choice
// and move a token's logits a lot (see tests/golden/README.md). Options that
// change routing inputs are therefore bounded on v3_tiny_fp8, whose smallest
// routing gap (7.6e-3) is the largest of the cases; the FP8 head, applied
// after all routing, is bounded on every case.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/safetensors.h"
#include "model/model.h"

namespace dsv3 {
namespace {

struct Measured {
  float worst = 0;      // max |diff| / max(1, max |golden|)
  float agree = 1;      // fraction of positions with the golden argmax
};

Measured RunCase(const std::string& name, const LoadOptions& options) {
  const std::string dir = std::string(DSV3_GOLDEN_DIR) + "/" + name;
  auto model = Model::Load(dir, options);
  EXPECT_TRUE(model.ok()) << model.status().message();
  auto file = SafetensorsFile::Open(dir + "/golden.safetensors");
  EXPECT_TRUE(file.ok());
  const TensorInfo* tk = (*file)->Find("tokens");
  const int64_t B = tk->shape[0], T = tk->shape[1];
  const int32_t* tokens = reinterpret_cast<const int32_t*>(tk->data);
  const float* golden = reinterpret_cast<const float*>((*file)->Find("logits")->data);
  const int64_t V = (*file)->Find("logits")->shape[2];
  const Model& m = **model;
  KvCache cache = m.NewCache(B, T);
  Workspace ws;
  Measured out;
  int64_t positions = 0, agree = 0;
  auto check = [&](int64_t begin, int64_t end) {
    Batch batch;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = begin; p < end; ++p) batch.Add(tokens[b * T + p], p, b, true);
    ASSERT_TRUE(m.Forward(batch, cache, ws).ok());
    int64_t row = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = begin; p < end; ++p, ++row) {
        const float* got = ws.logits.data() + row * V;
        const float* want = golden + (b * T + p) * V;
        float max_abs = 0, max_diff = 0;
        for (int64_t v = 0; v < V; ++v)
          max_abs = std::max(max_abs, std::fabs(want[v])), max_diff = std::max(max_diff, std::fabs(got[v] - want[v]));
        out.worst = std::max(out.worst, max_diff / std::max(1.0f, max_abs));
        agree += std::max_element(got, got + V) - got == std::max_element(want, want + V) - want;
        ++positions;
      }
  };
  check(0, T / 2);
  for (int64_t p = T / 2; p < T; ++p) check(p, p + 1);
  out.agree = static_cast<float>(agree) / static_cast<float>(positions);
  std::printf("  %-18s worst relative error %.3g, argmax agreement %.1f%%\n", name.c_str(), out.worst,
              100.0f * out.agree);
  return out;
}

const char* kCases[] = {"v3_tiny_bf16", "v3_tiny_fp8", "v2lite_tiny_bf16"};

TEST(Options, FloatPathIsTheDefault) {
  const Measured m = RunCase("v3_tiny_fp8", LoadOptions{});
  EXPECT_LE(m.worst, 1e-3f);
  EXPECT_EQ(m.agree, 1.0f);
}

// FP8 head (e4m3, 128x128 blocks): e4m3 keeps 3 mantissa bits, so each head
// weight moves by up to 1/16; measured 4.3e-2 / 3.7e-2 / 4.2e-2 with argmax
// agreement 95.8% / 95.8% / 93.0%. Bound 8e-2 and 90%, every case.
TEST(Options, Fp8Head) {
  LoadOptions o;
  o.head = WeightFormat::kFp8;
  for (const char* c : kCases) {
    const Measured m = RunCase(c, o);
    EXPECT_LE(m.worst, 8e-2f) << c;
    EXPECT_GE(m.agree, 0.90f) << c;
  }
}

// BF16 head on a checkpoint whose head is BF16 already: a no-op, exact.
TEST(Options, Bf16HeadOnBf16CheckpointIsExact) {
  LoadOptions o;
  o.head = WeightFormat::kBf16;
  EXPECT_LE(RunCase("v3_tiny_bf16", o).worst, 1e-3f);
}

// FP8 router: measured 1.3e-2, argmax 97.9% on v3_tiny_fp8. Bound 3e-2, 95%.
TEST(Options, Fp8Router) {
  LoadOptions o;
  o.router = WeightFormat::kFp8;
  const Measured m = RunCase("v3_tiny_fp8", o);
  EXPECT_LE(m.worst, 3e-2f);
  EXPECT_GE(m.agree, 0.95f);
}

// FP8 latent KV cache (e4m3, per-token scales for c and k_pe): measured
// 3.9e-2, argmax 95.8% on v3_tiny_fp8. Bound 8e-2, 90%.
TEST(Options, Fp8KvCache) {
  LoadOptions o;
  o.kv_cache = KvCacheType::kF8E4M3;
  const Measured m = RunCase("v3_tiny_fp8", o);
  EXPECT_LE(m.worst, 8e-2f);
  EXPECT_GE(m.agree, 0.90f);
}

// BF16 activations in linear layers (VDPBF16PS where present): measured
// 5.9e-3, argmax 100% on v3_tiny_fp8. Bound 1.5e-2, 97%.
TEST(Options, Bf16Activations) {
  LoadOptions o;
  o.bf16_activations = true;
  const Measured m = RunCase("v3_tiny_fp8", o);
  EXPECT_LE(m.worst, 1.5e-2f);
  EXPECT_GE(m.agree, 0.97f);
}

// FP8 weights as int8 levels times int8 activations (VNNI, issue 18).
// Copied into memory (the default) the FP8 matrices become int8 tiles at
// load and every product is int8, decode and W_uk^T included: measured
// 2.75e-2, argmax 93.8% on v3_tiny_fp8 (prefill in the decompressed MLA
// form; 3.07e-2 / 95.8% absorbed), bound 6e-2 and 93%. With the FP8 head as
// well (every case then has FP8 products): 4.68e-2 / 4.97e-2 / 4.70e-2,
// argmax 96.4% / 93.8% / 93.0% (the FP8 head alone: 4.3e-2 / 3.7e-2 /
// 4.2e-2); bound 1e-1 and 88%. Read from the mapping (--mmap) the tiles are
// made per call from 8 tokens on and decode keeps the float kernel: measured
// 2.46e-2 / 95.8%.
TEST(Options, Int8Fp8) {
  LoadOptions o;
  o.int8_fp8 = true;
  for (bool copy : {true, false}) {
    o.load_to_memory = copy;
    const Measured m = RunCase("v3_tiny_fp8", o);
    EXPECT_LE(m.worst, 6e-2f) << "load_to_memory " << copy;
    EXPECT_GE(m.agree, 0.93f) << "load_to_memory " << copy;
  }
  o.load_to_memory = true;
  o.head = WeightFormat::kFp8;
  for (const char* c : kCases) {
    const Measured h = RunCase(c, o);
    EXPECT_LE(h.worst, 1e-1f) << c;
    EXPECT_GE(h.agree, 0.88f) << c;
  }
}

// Which matrices become tiles: every FP8 one copied into memory, the FP8
// head and W_uk^T made at load included, but not a router.
TEST(Options, Int8Fp8TilesEveryFp8MatrixButRouters) {
  const std::string dir = std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_fp8";
  LoadOptions o;
  o.int8_fp8 = true, o.head = WeightFormat::kFp8, o.router = WeightFormat::kFp8;
  auto tiled = Model::Load(dir, o);
  o.load_to_memory = false;
  auto mapped = Model::Load(dir, o);
  ASSERT_TRUE(tiled.ok() && mapped.ok());
  const ModelWeights& t = (*tiled)->weights();
  EXPECT_EQ(t.lm_head.dtype, DType::kI8T32);
  EXPECT_EQ((*mapped)->weights().lm_head.dtype, DType::kF8E4M3);
  for (const LayerWeights& l : t.layers) {
    EXPECT_EQ(l.attn.q_a_proj.dtype, DType::kI8T32);
    EXPECT_EQ(l.attn.w_uk_t.dtype, DType::kI8T32);
    if (l.is_moe) EXPECT_EQ(l.moe.gate.dtype, DType::kF8E4M3);
    if (l.is_mtp) EXPECT_EQ(l.mtp.shared_head_head.dtype, DType::kI8T32);
  }
}

// Everything reduced at once: measured 4.7e-2, argmax 89.6% on v3_tiny_fp8.
// Bound 1.2e-1, 85%.
TEST(Options, AllReducedTogether) {
  LoadOptions o;
  o.head = WeightFormat::kFp8, o.router = WeightFormat::kFp8, o.kv_cache = KvCacheType::kF8E4M3;
  o.bf16_activations = true;
  const Measured m = RunCase("v3_tiny_fp8", o);
  EXPECT_LE(m.worst, 1.2e-1f);
  EXPECT_GE(m.agree, 0.85f);
}

// Realigning misaligned weights and copying them to huge-page memory (both
// on by default) copy bytes, never values: logits are bit-identical to
// reading the mapping in place, and every matrix then starts on a 64-byte
// boundary.
TEST(Options, AlignAndCopyChangeNothingButAddresses) {
  const std::string dir = std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_fp8";
  LoadOptions in_place, aligned_only;
  in_place.align_weights = false, in_place.load_to_memory = false;
  aligned_only.load_to_memory = false;
  auto a = Model::Load(dir), b = Model::Load(dir, in_place), c = Model::Load(dir, aligned_only);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  for (const LayerWeights& l : (*c)->weights().layers)
    for (const Weight* w : {&l.attn.q_a_proj, &l.attn.kv_b_proj, &l.attn.o_proj})
      EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 64, 0u);
  for (const LayerWeights& l : (*a)->weights().layers)
    for (const Weight* w : {&l.attn.q_a_proj, &l.attn.kv_b_proj, &l.attn.o_proj})
      EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 64, 0u);
  bool misaligned_in_file = false;  // the case must exercise the copy
  for (const LayerWeights& l : (*b)->weights().layers)
    for (const Weight* w : {&l.attn.q_a_proj, &l.attn.kv_b_proj, &l.attn.o_proj})
      misaligned_in_file |= reinterpret_cast<uintptr_t>(w->data) % 64 != 0;
  EXPECT_TRUE(misaligned_in_file);
  Batch batch;
  for (int p = 0; p < 6; ++p) batch.Add(3 + p, p, 0, true);
  KvCache ca = (*a)->NewCache(1, 6), cb = (*b)->NewCache(1, 6), cc = (*c)->NewCache(1, 6);
  Workspace wa, wb, wc;
  ASSERT_TRUE((*a)->Forward(batch, ca, wa).ok());
  ASSERT_TRUE((*b)->Forward(batch, cb, wb).ok());
  ASSERT_TRUE((*c)->Forward(batch, cc, wc).ok());
  const int64_t V = (*a)->config().vocab_size;
  for (int64_t i = 0; i < 6 * V; ++i) ASSERT_TRUE(wa.logits[i] == wb.logits[i] && wc.logits[i] == wb.logits[i]);
}

TEST(Options, ParseWeightFormatNamesTheFlag) {
  EXPECT_TRUE(ParseWeightFormat("fp8", "--head").ok());
  auto bad = ParseWeightFormat("int4", "--head");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--head"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
