// Split GGUF sets (llama.cpp gguf-split layout): any part opens the whole
// set, a model split in three runs with the logits of the single file, and a
// missing part, a renamed part or parts of different models are errors
// naming the file.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "convert_test_util.h"
#include "io/gguf.h"

namespace dsv3 {
namespace {

using namespace testing_util;

std::string Part(const std::string& prefix, int no, int count) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "-%05d-of-%05d.gguf", no, count);
  return prefix + buf;
}

// Writes `in`'s tensors as `count` parts PREFIX-0000k-of-0000n.gguf, as
// gguf-split does: all metadata in part 1, split.* keys in every part.
// `tensors_count_delta` corrupts split.tensors.count (a different model).
void Split(const std::string& in, const std::string& prefix, int count, int tensors_count_delta = 0) {
  auto f = GgufFile::Open(in);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const auto& ts = (*f)->tensors();
  const size_t per = (ts.size() + count - 1) / count;
  for (int p = 0; p < count; ++p) {
    std::vector<std::pair<std::string, GgufValue>> kv;
    if (p == 0) kv.assign((*f)->metadata().begin(), (*f)->metadata().end());
    kv.push_back({"split.no", GgufValue::U32(p)});
    kv.push_back({"split.count", GgufValue::U32(count)});
    kv.push_back({"split.tensors.count", GgufValue::I32(static_cast<int32_t>(ts.size()) + tensors_count_delta)});
    std::vector<GgufTensorSpec> specs;
    for (size_t i = p * per; i < std::min(ts.size(), (p + 1) * per); ++i)
      specs.push_back({ts[i].name, static_cast<GgmlType>(ts[i].ggml_type), ts[i].ne});
    auto w = GgufWriter::Create(Part(prefix, p + 1, count), kv, specs);
    ASSERT_TRUE(w.ok()) << w.status().message();
    for (size_t i = p * per; i < std::min(ts.size(), (p + 1) * per); ++i) ASSERT_TRUE((*w)->Write(ts[i].data, ts[i].nbytes).ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
}

TEST(GgufSplit, AnyPartLoadsTheWholeModel) {
  const std::string dir = ScratchDir();
  const std::string one = dir + "/tiny.gguf";
  ConvertOptions o;
  o.gguf_type = DType::kQ4_K;
  ASSERT_TRUE(RunConvert(ConvertTarget::kGguf, Golden("v3_tiny_bf16"), one, o).ok());
  Split(one, dir + "/tiny", 3);
  const GoldenLogits g = LoadGoldenLogits("v3_tiny_bf16");
  auto ref = LoadModel(one);
  ASSERT_TRUE(ref);
  const std::vector<float> want = AllLogits(*ref, g);
  for (int no = 1; no <= 3; ++no) {
    auto f = GgufFile::Open(Part(dir + "/tiny", no, 3));
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ((*f)->tensors().size(), GgufFile::Open(one).value()->tensors().size());
    EXPECT_NE((*f)->Find("general.architecture"), nullptr);
    auto m = LoadModel(Part(dir + "/tiny", no, 3));
    ASSERT_TRUE(m);
    EXPECT_EQ(AllLogits(*m, g), want) << "opened from part " << no;
  }
}

TEST(GgufSplit, MissingOrForeignPartsAreErrors) {
  const std::string dir = ScratchDir();
  const std::string one = dir + "/m.gguf";
  ConvertOptions o;
  o.gguf_type = DType::kQ8_0;
  ASSERT_TRUE(RunConvert(ConvertTarget::kGguf, Golden("v3_tiny_bf16"), one, o).ok());

  Split(one, dir + "/a", 3);
  std::filesystem::remove(Part(dir + "/a", 3, 3));
  auto r = GgufFile::Open(Part(dir + "/a", 1, 3));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("part 3 of 3 (" + Part(dir + "/a", 3, 3) + ")"), std::string::npos)
      << r.status().message();

  Split(one, dir + "/b", 3);  // part 2 of another model's set (its tensor total differs)
  Split(one, dir + "/c", 3, 5);
  std::filesystem::copy_file(Part(dir + "/c", 2, 3), Part(dir + "/b", 2, 3),
                             std::filesystem::copy_options::overwrite_existing);
  r = GgufFile::Open(Part(dir + "/b", 1, 3));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("different models"), std::string::npos) << r.status().message();

  Split(one, dir + "/d", 3);  // parts 2 and 3 swapped
  std::filesystem::rename(Part(dir + "/d", 2, 3), dir + "/tmp.gguf");
  std::filesystem::rename(Part(dir + "/d", 3, 3), Part(dir + "/d", 2, 3));
  std::filesystem::rename(dir + "/tmp.gguf", Part(dir + "/d", 3, 3));
  r = GgufFile::Open(Part(dir + "/d", 3, 3));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("split.no 2 do not make it part 2 of 3"), std::string::npos)
      << r.status().message();

  std::filesystem::copy_file(Part(dir + "/a", 1, 3), dir + "/renamed.gguf");
  r = GgufFile::Open(dir + "/renamed.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not named PREFIX"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace dsv3
