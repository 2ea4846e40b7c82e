// `dsv3 init`'s writer: a random checkpoint for any config loads and runs,
// has the release's dtypes (FP8 linear weights with block scales, BF16
// embedding/head/router/norms, F32 router bias), normal(0, std) values, is
// sharded with a consistent index, and does not depend on the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/mapped_file.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "model/init_checkpoint.h"
#include "model/model.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string GoldenConfig(const std::string& name) {
  return *ReadTextFile(std::string(DSV3_GOLDEN_DIR) + "/" + name + "/config.json");
}

std::string Tmp(const std::string& name) {
  const std::string dir = std::string(DSV3_TEST_TMP) + "/init_" + name;
  fs::remove_all(dir);
  return dir;
}

std::string FileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Init, Fp8CheckpointLoadsAndRuns) {
  const std::string dir = Tmp("fp8");
  InitOptions o;
  o.max_shard_bytes = 1 << 20;  // several shards
  ASSERT_TRUE(WriteRandomCheckpoint(GoldenConfig("v3_tiny_bf16"), dir, o).ok());
  auto store = TensorStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_GT((*store)->num_files(), 1u);
  const TensorInfo* q = (*store)->Find("model.layers.0.self_attn.q_a_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kF8E4M3);
  ASSERT_NE((*store)->Find("model.layers.0.self_attn.q_a_proj.weight_scale_inv"), nullptr);
  EXPECT_EQ((*store)->Find("lm_head.weight")->dtype, DType::kBF16);
  EXPECT_EQ((*store)->Find("model.layers.1.mlp.gate.weight")->dtype, DType::kBF16);
  EXPECT_EQ((*store)->Find("model.layers.1.mlp.gate.e_score_correction_bias")->dtype, DType::kF32);
  // The index's total_size is the sum of the tensor bytes.
  const auto index = nlohmann::json::parse(FileBytes(dir + "/model.safetensors.index.json"));
  uint64_t total = 0;
  for (const auto& name : (*store)->Names()) total += (*store)->Find(name)->nbytes;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_TRUE((*model)->config().quantization.has_value());
  KvCache cache = (*model)->NewCache(1, 8);
  Workspace ws;
  Batch b;
  for (int p = 0; p < 8; ++p) b.Add(5 + p, p, 0, true);
  ASSERT_TRUE((*model)->Forward(b, cache, ws).ok());
  for (int64_t i = 0; i < 8 * (*model)->config().vocab_size; ++i) ASSERT_TRUE(std::isfinite(ws.logits[i]));
}

TEST(Init, Bf16ValuesAreNormalWithTheStd) {
  const std::string dir = Tmp("bf16");
  InitOptions o;
  o.fp8 = false;
  o.std = 0.01;
  ASSERT_TRUE(WriteRandomCheckpoint(GoldenConfig("v2lite_tiny_bf16"), dir, o).ok());
  auto store = TensorStore::Open(dir);
  ASSERT_TRUE(store.ok());
  const TensorInfo* e = (*store)->Find("model.embed_tokens.weight");
  ASSERT_EQ(e->dtype, DType::kBF16);
  double sum = 0, sq = 0;
  const int64_t n = e->numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = Bf16ToF32(reinterpret_cast<const uint16_t*>(e->data)[i]);
    sum += v, sq += v * v;
  }
  const double mean = sum / n, std = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(std, 0.01, 0.01 * 0.03) << "over " << n << " values";
  EXPECT_NEAR(mean, 0.0, 5.0 * 0.01 / std::sqrt(static_cast<double>(n)));
  const TensorInfo* norm = (*store)->Find("model.norm.weight");
  EXPECT_EQ(Bf16ToF32(reinterpret_cast<const uint16_t*>(norm->data)[3]), 1.0f);
  EXPECT_EQ((*store)->Find("model.layers.0.self_attn.q_proj.weight")->dtype, DType::kBF16);
  EXPECT_TRUE(Model::Load(dir).ok());
}

TEST(Init, SameSeedSameBytesWhateverTheThreadCount) {
  const std::string a = Tmp("t1"), b = Tmp("t2"), c = Tmp("seed2");
  InitOptions o;
  const int threads = NumThreads();
  SetNumThreads(1);
  ASSERT_TRUE(WriteRandomCheckpoint(GoldenConfig("v3_tiny_fp8"), a, o).ok());
  SetNumThreads(2);
  ASSERT_TRUE(WriteRandomCheckpoint(GoldenConfig("v3_tiny_fp8"), b, o).ok());
  o.seed = 2;
  ASSERT_TRUE(WriteRandomCheckpoint(GoldenConfig("v3_tiny_fp8"), c, o).ok());
  SetNumThreads(threads);
  const std::string shard = "/model-00001-of-00001.safetensors";
  EXPECT_EQ(FileBytes(a + shard), FileBytes(b + shard));
  EXPECT_NE(FileBytes(a + shard), FileBytes(c + shard));
}

TEST(Init, BadInputNamesTheCulprit) {
  InitOptions o;
  Status s = WriteRandomCheckpoint("{\"model_type\": \"deepseek_v3\"}", Tmp("bad"), o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("field"), std::string::npos) << s.message();
  o.std = -1;
  s = WriteRandomCheckpoint(GoldenConfig("v3_tiny_fp8"), Tmp("bad2"), o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("std"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
