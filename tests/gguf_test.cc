// GGUF: the Q8_0 codec, the reader/writer (metadata types, alignment,
// truncation and corruption at every byte), golden checkpoints converted to
// GGUF and loaded back (F32/BF16 logits identical to the safetensors model,
// Q8_0 within a stated bound), MTP kept with --mtp, tokenizer metadata, and
// files written by llama.cpp's own gguf-py the way its converter writes them
// (tests/gguf/README.md): they load, and every tensor equals dsv3's own
// conversion byte for byte.
#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "convert_test_util.h"
#include "io/gguf.h"
#include "model/gguf_model.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using namespace testing_util;

TEST(Q8_0, MatchesGgmlReference) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = (i - 16) * 0.25f;  // amax 4 -> d = 4/127
  x[5] = 4.0f * 63.5f / 127.0f;                           // exactly half a step: rounds away from zero
  uint8_t b[34];
  EncodeQ8_0(x, 32, b);
  uint16_t h;
  std::memcpy(&h, b, 2);
  EXPECT_EQ(h, F32ToF16(4.0f / 127.0f));
  EXPECT_EQ(static_cast<int8_t>(b[2 + 0]), -127);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 5]), 64);
  float y[32];
  DecodeQ8_0(b, 32, y);
  const float d = F16ToF32(h);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(y[i], d * static_cast<int8_t>(b[2 + i]));
    EXPECT_LE(std::fabs(y[i] - x[i]), 0.5f * d * 1.001f + 4 * 1e-3f);  // d is f16-rounded
  }
  float zero[32] = {};
  EncodeQ8_0(zero, 32, b);
  DecodeQ8_0(b, 32, y);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  Weight w;  // ops decode a Q8_0 row through the same codec
  w.dtype = DType::kQ8_0, w.rows = 1, w.cols = 32, w.data = b;
  EXPECT_EQ(w.bytes_per_row(), 34);
}

TEST(GgufIo, WriteReadRoundTrip) {
  const std::string path = ScratchDir() + "/t.gguf";
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.architecture", GgufValue::Str("deepseek2")}, {"a.u32", GgufValue::U32(7)},
      {"a.f32", GgufValue::F32(0.5f)}, {"a.bool", GgufValue::Bool(true)},
      {"a.strs", GgufValue::StrArray({"x", "", "y z"})}, {"a.ints", GgufValue::I32Array({-1, 2})}};
  const std::vector<float> t0 = {1, 2, 3, 4, 5, 6};
  std::vector<GgufTensorSpec> specs = {{"t0", GgmlType::kF32, {3, 2}}, {"t1", GgmlType::kBF16, {5}}};
  auto w = GgufWriter::Create(path, kv, specs);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(t0.data(), 8).ok());  // in pieces
  ASSERT_TRUE((*w)->Write(t0.data() + 2, 16).ok());
  const uint16_t t1[5] = {F32ToBf16(1), F32ToBf16(-2), 0, 0, F32ToBf16(3)};
  ASSERT_FALSE((*w)->Finish().ok());  // t1 not written yet
  ASSERT_TRUE((*w)->Write(t1, 10).ok());
  ASSERT_FALSE((*w)->Write(t1, 1).ok());  // past the declared size
  ASSERT_TRUE((*w)->Finish().ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->Find("a.u32")->AsInt(), 7);
  EXPECT_EQ((*f)->Find("a.f32")->AsDouble(), 0.5);
  EXPECT_TRUE((*f)->Find("a.bool")->b);
  EXPECT_EQ((*f)->Find("a.strs")->items[2].s, "y z");
  EXPECT_EQ((*f)->Find("a.ints")->items[0].AsInt(), -1);
  const GgufTensorInfo* g0 = (*f)->FindTensor("t0");
  ASSERT_TRUE(g0 && g0->dtype == DType::kF32);
  EXPECT_EQ(g0->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(0, std::memcmp(g0->data, t0.data(), 24));
  const GgufTensorInfo* g1 = (*f)->FindTensor("t1");
  EXPECT_EQ(g1->offset % 32, 0u);
  EXPECT_EQ(0, std::memcmp(g1->data, t1, 10));
}

// Every truncation and a flipped byte at every header position must give an
// error or a valid file, never a crash (ASan runs this too).
TEST(GgufIo, TruncatedOrCorruptFilesAreErrors) {
  const std::string dir = ScratchDir();
  ConvertOptions o;
  o.gguf_type = DType::kQ8_0;
  ASSERT_TRUE(RunConvert(ConvertTarget::kGguf, Golden("v2lite_tiny_bf16"), dir + "/m.gguf", o).ok());
  const std::string bytes = ReadTextFile(dir + "/m.gguf").value();
  auto full = GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m");
  ASSERT_TRUE(full.ok());
  const size_t header = (*full)->data_offset();
  for (size_t n = 0; n < bytes.size(); n += (n < header ? 1 : 4099)) {
    auto f = GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), n, "m");
    ASSERT_FALSE(f.ok()) << "truncated to " << n;
  }
  std::string bad = bytes;
  for (size_t i = 0; i < header; i += 3) {
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)GgufFile::Parse(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), "m");
    bad[i] = bytes[i];
  }
  std::ofstream(dir + "/cut.gguf") << bytes.substr(0, bytes.size() - 100);
  auto m = Model::Load(dir + "/cut.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("truncated"), std::string::npos) << m.status().message();
}

// F32 and BF16 GGUF files hold exactly the values the engine decodes from the
// safetensors checkpoint. In the same dtype (BF16) the same kernel runs, so
// the logits must be identical; F32 weights run the F32 kernel, whose lanes
// sum in another order than the BF16/FP8 ones (and FP8 folds its block scale
// into the activations), so there the logits agree to float32 rounding
// (1e-5 relative) with equal argmax. Q8_0 is judged
// on v3_tiny_fp8 (routing margins 7.6e-3): bound 5e-2 relative, argmax equal
// except near-ties. v3_tiny_bf16 / v2lite (margins ~1e-4) are reported only.
TEST(GgufRoundTrip, LogitsOfEveryGoldenCase) {
  const std::string dir = ScratchDir();
  for (const char* name : {"v3_tiny_bf16", "v3_tiny_fp8", "v2lite_tiny_bf16"}) {
    const GoldenLogits g = LoadGoldenLogits(name);
    auto ref = LoadModel(Golden(name));
    ASSERT_TRUE(ref);
    const std::vector<float> want = AllLogits(*ref, g);
    for (DType t : {DType::kF32, DType::kBF16, DType::kQ8_0}) {
      if (t == DType::kBF16 && std::string(name) == "v3_tiny_fp8") continue;  // BF16 rounding: ConvertBf16 tests
      const std::string path = dir + "/" + name + "_" + std::string(DTypeName(t)) + ".gguf";
      ConvertOptions o;
      o.gguf_type = t;
      auto s = RunConvert(ConvertTarget::kGguf, Golden(name), path, o);
      ASSERT_TRUE(s.ok()) << s.status().message();
      auto m = LoadModel(path);
      ASSERT_TRUE(m);
      const std::vector<float> got = AllLogits(*m, g);
      const Agreement vs_engine = Compare(got.data(), want.data(), g.B * g.T, g.V);
      const Agreement vs_golden = Compare(got.data(), g.logits, g.B * g.T, g.V);
      Report(std::string(name) + " GGUF " + std::string(DTypeName(t)) + " vs golden", vs_golden);
      if (t != DType::kQ8_0) {
        if (t == DType::kF32) {
          EXPECT_LE(vs_engine.worst_rel, 1e-5) << name << " F32: logits differ from the safetensors model";
          EXPECT_EQ(vs_engine.argmax_diff, 0);
        } else {
          EXPECT_EQ(got, want) << name << " " << DTypeName(t) << ": logits differ from the safetensors model";
        }
        EXPECT_LE(vs_golden.worst_rel, 1e-3);
        EXPECT_EQ(vs_golden.argmax_diff, 0);
      } else if (std::string(name) == "v3_tiny_fp8") {
        EXPECT_LE(vs_engine.worst_rel, 5e-2);
        EXPECT_EQ(vs_engine.unexplained, 0);
      }
    }
  }
}

TEST(GgufRoundTrip, MtpKeptWithFlag) {
  const std::string path = ScratchDir() + "/mtp.gguf";
  ConvertOptions o;
  o.gguf_mtp = true;
  ASSERT_TRUE(RunConvert(ConvertTarget::kGguf, Golden("v3_tiny_bf16"), path, o).ok());
  auto m = LoadModel(path);
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->has_mtp());
  const GoldenLogits g = LoadGoldenLogits("v3_tiny_bf16");
  auto ref = LoadModel(Golden("v3_tiny_bf16"));
  EXPECT_EQ(AllLogits(*m, g, true), AllLogits(*ref, g, true));
}

TEST(GgufRoundTrip, TokenizerMetadata) {
  const std::string dir = ScratchDir();
  fs::copy(Golden("v2lite_tiny_bf16"), dir + "/in");
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 290; ++i) vocab["t" + std::to_string(i)] = i;
  nlohmann::json tok = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"t1 t2", {"t3", "t4"}}}}},
                        {"added_tokens", {{{"id", 295}, {"content", "<｜begin▁of▁sentence｜>"}, {"special", true}},
                                          {{"id", 296}, {"content", "plain"}, {"special", false}}}}};
  std::ofstream(dir + "/in/tokenizer.json") << tok.dump();
  std::ofstream(dir + "/in/tokenizer_config.json")
      << nlohmann::json{{"bos_token", {{"content", "<｜begin▁of▁sentence｜>"}}}, {"add_bos_token", true},
                        {"chat_template", "{{ x }}"}}.dump();
  ASSERT_TRUE(RunConvert(ConvertTarget::kGguf, dir + "/in", dir + "/t.gguf").ok());
  auto f = GgufFile::Open(dir + "/t.gguf");
  ASSERT_TRUE(f.ok());
  const GgufValue* tokens = (*f)->Find("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens);
  ASSERT_EQ(tokens->items.size(), 300u);
  EXPECT_EQ(tokens->items[7].s, "t7");
  EXPECT_EQ(tokens->items[292].s, "[PAD292]");
  EXPECT_EQ((*f)->Find("tokenizer.ggml.token_type")->items[295].AsInt(), 3);
  EXPECT_EQ((*f)->Find("tokenizer.ggml.token_type")->items[296].AsInt(), 4);
  EXPECT_EQ((*f)->Find("tokenizer.ggml.token_type")->items[292].AsInt(), 5);
  EXPECT_EQ((*f)->Find("tokenizer.ggml.merges")->items[1].s, "t3 t4");
  EXPECT_EQ((*f)->Find("tokenizer.ggml.bos_token_id")->AsInt(), 295);
  EXPECT_TRUE((*f)->Find("tokenizer.ggml.add_bos_token")->b);
  EXPECT_EQ((*f)->Find("tokenizer.chat_template")->s, "{{ x }}");
  EXPECT_EQ((*f)->Find("tokenizer.ggml.model")->s, "gpt2");
  auto m = LoadModel(dir + "/t.gguf");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->config().bos_token_id, 295);
}

// tests/gguf/llamacpp_*.gguf were written by llama.cpp's gguf-py following
// its DeepseekV2Model converter (see tests/gguf/README.md).
class LlamaCppFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaCppFixture, LoadsAndMatchesDsv3Conversion) {
  const std::string name = GetParam();
  const std::string fixture = GgufFixture("llamacpp_" + name + "_q8_0.gguf");
  const std::string ours = ScratchDir() + "/ours.gguf";
  ConvertOptions o;
  o.gguf_type = DType::kQ8_0;
  ASSERT_TRUE(RunConvert(ConvertTarget::kGguf, Golden(name), ours, o).ok());
  auto theirs_file = GgufFile::Open(fixture), ours_file = GgufFile::Open(ours);
  ASSERT_TRUE(theirs_file.ok() && ours_file.ok()) << theirs_file.status().message();
  const GgufFile& a = **theirs_file;
  const GgufFile& b = **ours_file;
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& t : a.tensors()) {  // names, types, shapes and bytes, incl. Q8_0 rounding
    const GgufTensorInfo* u = b.FindTensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->ggml_type, t.ggml_type) << t.name;
    ASSERT_EQ(u->ne, t.ne) << t.name;
    EXPECT_EQ(0, std::memcmp(u->data, t.data, t.nbytes)) << t.name;
  }
  for (const auto& [key, value] : b.metadata()) {  // every model key dsv3 writes, llama.cpp wrote the same
    if (key.rfind("deepseek2.", 0) != 0) continue;
    const GgufValue* v = a.Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->AsDouble(), value.AsDouble()) << key;
  }
  auto cfg = ConfigFromGguf(a);
  auto golden_cfg = LoadConfig(Golden(name));
  ASSERT_TRUE(cfg.ok() && golden_cfg.ok());
  EXPECT_EQ(cfg->topk_method, golden_cfg->topk_method);
  EXPECT_EQ(cfg->scoring_func, golden_cfg->scoring_func);
  EXPECT_EQ(cfg->q_lora_rank, golden_cfg->q_lora_rank);
  EXPECT_EQ(cfg->n_group, golden_cfg->n_group);
  EXPECT_EQ(cfg->num_nextn_predict_layers, 0);  // llama.cpp drops MTP
  auto theirs = LoadModel(fixture), mine = LoadModel(ours);
  ASSERT_TRUE(theirs && mine);
  const GoldenLogits g = LoadGoldenLogits(name);
  const std::vector<float> got = AllLogits(*theirs, g);
  EXPECT_EQ(got, AllLogits(*mine, g));
  Report("llama.cpp gguf-py " + name + " Q8_0 vs golden", Compare(got.data(), g.logits, g.B * g.T, g.V));
}

INSTANTIATE_TEST_SUITE_P(Cases, LlamaCppFixture, ::testing::Values("v3_tiny_fp8", "v2lite_tiny_bf16"));

}  // namespace
}  // namespace dsv3
