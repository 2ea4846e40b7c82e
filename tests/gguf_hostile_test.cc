// GGUF files crafted as an attacker would (issue 20): metadata that would
// size allocations (block_count 2^31-1, expert_count 2^31-1), reals that
// would turn every logit into NaN (rope factor 0/NaN/inf, beta NaN or -1,
// epsilon inf, expert scale inf), more metadata array elements than a
// tokenizer could need, and a tensor table one short of the header. Each is
// refused with an error naming the file and the GGUF key (never a
// config.json field), before anything is sized by it.
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

#include "convert_test_util.h"
#include "io/gguf.h"
#include "model/gguf_model.h"

namespace dsv3 {
namespace {

using namespace testing_util;
using Metadata = std::vector<std::pair<std::string, GgufValue>>;

// The tiny V3 golden checkpoint as an F32 GGUF, converted once per run.
const std::string& BaseGguf() {
  static const std::string path = [] {
    const std::string p = ScratchDir() + "/base.gguf";
    ConvertOptions o;
    o.gguf_type = DType::kF32;
    auto s = RunConvert(ConvertTarget::kGguf, Golden("v3_tiny_bf16"), p, o);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return p;
  }();
  return path;
}

// Rewrites BaseGguf() to `out` with its metadata passed through `edit`.
void Rewrite(const std::string& out, const std::function<void(Metadata&)>& edit) {
  auto in = GgufFile::Open(BaseGguf());
  ASSERT_TRUE(in.ok()) << in.status().message();
  Metadata kv = (*in)->metadata();
  edit(kv);
  std::vector<GgufTensorSpec> specs;
  for (const auto& t : (*in)->tensors()) specs.push_back({t.name, static_cast<GgmlType>(t.ggml_type), t.ne});
  auto w = GgufWriter::Create(out, kv, specs);
  ASSERT_TRUE(w.ok()) << w.status().message();
  for (const auto& t : (*in)->tensors()) ASSERT_TRUE((*w)->Write(t.data, t.nbytes).ok());
  ASSERT_TRUE((*w)->Finish().ok());
}

void Set(Metadata& kv, const std::string& key, GgufValue v) {
  for (auto& [k, old] : kv)
    if (k == key) return void(old = std::move(v));
  kv.emplace_back(key, std::move(v));
}

struct HostileKey {
  const char* key;
  GgufValue value;
};

TEST(GgufHostile, MetadataRefusedNamingTheKey) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const HostileKey cases[] = {
      {"deepseek2.block_count", GgufValue::U32(0x7FFFFFFF)},
      {"deepseek2.block_count", GgufValue::U32(1000000)},
      {"deepseek2.expert_count", GgufValue::U32(0x7FFFFFFF)},
      {"deepseek2.embedding_length", GgufValue::U64(uint64_t{1} << 40)},
      {"deepseek2.attention.key_length_mla", GgufValue::U32(0xFFFFFFF0)},
      {"deepseek2.rope.scaling.factor", GgufValue::F32(0)},
      {"deepseek2.rope.scaling.factor", GgufValue::F32(nan)},
      {"deepseek2.rope.scaling.factor", GgufValue::F32(inf)},
      {"deepseek2.rope.scaling.yarn_beta_fast", GgufValue::F32(nan)},
      {"deepseek2.rope.scaling.yarn_beta_fast", GgufValue::F32(-1)},
      {"deepseek2.attention.layer_norm_rms_epsilon", GgufValue::F32(inf)},
      {"deepseek2.expert_weights_scale", GgufValue::F32(inf)},
      {"deepseek2.rope.freq_base", GgufValue::F32(nan)},
  };
  const std::string path = ScratchDir() + "/hostile.gguf";
  for (const HostileKey& hk : cases) {
    Rewrite(path, [&](Metadata& kv) {
      Set(kv, hk.key, hk.value);
      if (std::string(hk.key).find("rope.scaling") != std::string::npos) Set(kv, "deepseek2.rope.scaling.type", GgufValue::Str("yarn"));
    });
    auto m = Model::Load(path);
    ASSERT_FALSE(m.ok()) << hk.key;
    const std::string& msg = m.status().message();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string("metadata key '") + hk.key + "'"), std::string::npos) << hk.key << ": " << msg;
    EXPECT_EQ(msg.find("field '"), std::string::npos) << "names a config.json field: " << msg;
  }
}

TEST(GgufHostile, MetadataArraysAreBounded) {
  // 5M one-byte elements: 5 MB on disk, ~500 MB if each became a GgufValue.
  const std::string path = ScratchDir() + "/bigarray.gguf";
  std::string bytes;
  auto put = [&](const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); };
  const uint32_t magic = kGgufMagic, version = 3, array = 9, u8 = 0;
  const uint64_t n_tensors = 0, n_kv = 1, key_len = 5, n = 5u << 20;
  put(&magic, 4), put(&version, 4), put(&n_tensors, 8), put(&n_kv, 8);
  put(&key_len, 8), put("a.big", 5), put(&array, 4), put(&u8, 4), put(&n, 8);
  bytes.append(n, '\1');
  auto f = GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("'a.big'"), std::string::npos) << f.status().message();
  EXPECT_NE(f.status().message().find("metadata array elements"), std::string::npos) << f.status().message();
}

TEST(GgufHostile, TensorTableOneShortIsAnError) {
  std::ifstream in(BaseGguf(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t n_tensors = 0;
  std::memcpy(&n_tensors, bytes.data() + 8, 8);
  ASSERT_GT(n_tensors, 1u);
  --n_tensors;
  std::memcpy(bytes.data() + 8, &n_tensors, 8);
  const std::string path = ScratchDir() + "/short.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  auto m = Model::Load(path);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("tensor"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find(path), std::string::npos) << m.status().message();
}

TEST(GgufHostile, UnmodifiedRewriteStillLoads) {  // the harness itself changes nothing that matters
  const std::string path = ScratchDir() + "/same.gguf";
  Rewrite(path, [](Metadata&) {});
  auto m = Model::Load(path);
  EXPECT_TRUE(m.ok()) << m.status().message();
}

}  // namespace
}  // namespace dsv3
