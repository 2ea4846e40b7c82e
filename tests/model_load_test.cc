// Broken checkpoints: each defect must give one clear error naming the
// tensor (or field) and never crash. Broken copies of the golden checkpoints
// are written with the project's own safetensors writer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

// Copies golden case `name` into a temp dir, letting `edit` drop or replace tensors.
using Edit = std::function<bool(const TensorInfo& t, TensorToWrite& out, std::vector<uint8_t>& storage)>;

std::string BrokenCopy(const std::string& name, const std::string& tag, const Edit& edit) {
  const fs::path src = fs::path(DSV3_GOLDEN_DIR) / name;
  const fs::path dst = fs::path(DSV3_TEST_TMP) / ("broken_" + tag);
  fs::remove_all(dst);
  fs::create_directories(dst);
  fs::copy_file(src / "config.json", dst / "config.json");
  auto store = TensorStore::Open(src.string());
  EXPECT_TRUE(store.ok());
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<uint8_t>> storage;
  storage.reserve(4096);
  for (const auto& n : (*store)->Names()) {
    const TensorInfo* t = (*store)->Find(n);
    TensorToWrite w{{t->name, t->dtype, t->shape}, t->data};
    storage.emplace_back();
    if (edit(*t, w, storage.back())) tensors.push_back(w);
  }
  EXPECT_TRUE(WriteSafetensors((dst / "model.safetensors").string(), tensors).ok());
  return dst.string();
}

void ExpectLoadError(const std::string& dir, const std::string& needle) {
  auto m = Model::Load(dir);
  ASSERT_FALSE(m.ok()) << "loaded a broken checkpoint, expected: " << needle;
  EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status().message();
}

TEST(ModelLoad, MissingTensorIsNamed) {
  const std::string victim = "model.layers.1.self_attn.kv_b_proj.weight";
  ExpectLoadError(BrokenCopy("v3_tiny_bf16", "missing", [&](const TensorInfo& t, auto&, auto&) {
                    return t.name != victim;
                  }),
                  victim);
}

TEST(ModelLoad, WrongShapeIsNamed) {
  const std::string victim = "model.layers.0.mlp.up_proj.weight";
  ExpectLoadError(BrokenCopy("v3_tiny_bf16", "shape", [&](const TensorInfo& t, TensorToWrite& w, auto&) {
                    if (t.name == victim) w.spec.shape = {t.shape[1], t.shape[0]};
                    return true;
                  }),
                  victim + "' has shape");
}

TEST(ModelLoad, WrongDtypeIsNamed) {
  const std::string victim = "model.layers.0.self_attn.o_proj.weight";
  ExpectLoadError(BrokenCopy("v3_tiny_bf16", "dtype", [&](const TensorInfo& t, TensorToWrite& w, auto&) {
                    if (t.name == victim) w.spec.dtype = DType::kI16;
                    return true;
                  }),
                  victim + "' has dtype I16");
}

TEST(ModelLoad, Fp8WeightWithoutScaleIsNamed) {
  const std::string victim = "model.layers.1.mlp.experts.3.down_proj.weight";
  ExpectLoadError(BrokenCopy("v3_tiny_fp8", "noscale", [&](const TensorInfo& t, auto&, auto&) {
                    return t.name != victim + "_scale_inv";
                  }),
                  victim + "_scale_inv");
}

TEST(ModelLoad, WrongScaleShapeIsNamed) {
  const std::string victim = "model.layers.0.self_attn.q_a_proj.weight_scale_inv";
  ExpectLoadError(BrokenCopy("v3_tiny_fp8", "scaleshape", [&](const TensorInfo& t, TensorToWrite& w, auto&) {
                    if (t.name == victim) w.spec.shape = {4, 1};
                    return true;
                  }),
                  victim);
}

TEST(ModelLoad, InconsistentConfigIsNamed) {
  const fs::path dst = fs::path(DSV3_TEST_TMP) / "broken_config";
  fs::remove_all(dst);
  fs::copy(fs::path(DSV3_GOLDEN_DIR) / "v3_tiny_bf16", dst);
  std::ofstream(dst / "config.json") << R"({"model_type":"deepseek_v3","vocab_size":384,"hidden_size":256,)"
                                        R"("num_hidden_layers":3,"num_attention_heads":4,"kv_lora_rank":64,)"
                                        R"("qk_rope_head_dim":16,"qk_nope_head_dim":32,"v_head_dim":32,)"
                                        R"("intermediate_size":384,"n_routed_experts":16,"moe_intermediate_size":128,)"
                                        R"("num_experts_per_tok":4,"n_group":5})";
  ExpectLoadError(dst.string(), "n_group");
}

TEST(ModelLoad, OutOfRangeTokenIsAnError) {
  auto m = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_bf16");
  ASSERT_TRUE(m.ok());
  KvCache cache = (*m)->NewCache(1, 8);
  Workspace ws;
  Batch b;
  b.Add(384, 0, 0, true);
  Status st = (*m)->Forward(b, cache, ws);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token id 384"), std::string::npos) << st.message();
  b.Clear();
  b.Add(5, 3, 0, true);  // skips positions 0..2
  st = (*m)->Forward(b, cache, ws);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not continue"), std::string::npos) << st.message();
  b.Clear();
  b.Add(5, 8, 0, true);
  EXPECT_FALSE((*m)->Forward(b, cache, ws).ok());  // past the cache capacity
}

}  // namespace
}  // namespace dsv3
