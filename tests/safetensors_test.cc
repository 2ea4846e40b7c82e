// Safetensors reading, writing and every malformed-header case: each must be
// rejected with a message naming the file and the offending tensor/field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string Image(const std::string& header, size_t data_bytes, uint64_t declared_len = UINT64_MAX) {
  std::string s(8, '\0');
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::memcpy(s.data(), &len, 8);
  return s + header + std::string(data_bytes, '\x01');
}

Expected<std::vector<TensorInfo>> Parse(const std::string& image) {
  return SafetensorsFile::ParseImage(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "x.safetensors",
                                     nullptr);
}

void ExpectError(const std::string& image, const std::string& needle) {
  auto r = Parse(image);
  ASSERT_FALSE(r.ok()) << "accepted: " << needle;
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("x.safetensors"), std::string::npos) << r.status().message();
}

TEST(Safetensors, ParsesValidHeader) {
  auto r = Parse(Image(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[12,16]}})",
                       16));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].numel(), 6);
}

TEST(Safetensors, RejectsMalformedFiles) {
  ExpectError(std::string(5, '\0'), "too short");
  ExpectError(Image("{}", 0, 1000), "past the end of the file");
  ExpectError(Image("{}", 0, (200ull << 20)), "exceeds");
  ExpectError(Image("{not json", 0), "not a JSON object");
  ExpectError(Image("[1,2]", 0), "not a JSON object");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 4), "'a'");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", 4), "past the end");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})", 4), "does not match");
  ExpectError(Image(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,4]}})", 4), "unknown dtype");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[-2],"data_offsets":[0,4]}})", 4), "shape");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[4,0]}})", 4), "begin > end");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2]}})", 4), "data_offsets");
  ExpectError(Image(R"({"a":{"shape":[2],"data_offsets":[0,4]}})", 4), "dtype");
  ExpectError(Image(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[2,6]}})",
                    8),
              "overlap");
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                    16),
              "overlap");
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16),
              "too large");
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(DSV3_TEST_TMP) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  fs::path dir_;
};

using SafetensorsFiles = TempDir;

TEST_F(SafetensorsFiles, WriterRoundTripsAndLeavesNoTempFile) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> b = {7, 8, 9};
  const std::string path = (dir_ / "t.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, {{{"a", DType::kF32, {2, 3}}, a.data()}, {{"b", DType::kBF16, {3}}, b.data()}},
                               {{"format", "pt"}})
                  .ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorInfo* t = (*f)->Find("a");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ShapeString(), "[2, 3]");
  EXPECT_EQ(std::memcmp(t->data, a.data(), 24), 0);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 8, 0u);  // aligned data section
}

TEST_F(SafetensorsFiles, UnfinishedWriterRemovesTempFile) {
  const std::string path = (dir_ / "t.safetensors").string();
  {
    auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {4}}});
    ASSERT_TRUE(w.ok());
    float x = 1;
    ASSERT_TRUE((*w)->Write(&x, 4).ok());
    EXPECT_FALSE((*w)->Finish().ok());  // 4 of 16 bytes
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(SafetensorsFiles, WriteFailureIsReported) {
  auto w = SafetensorsWriter::Create((dir_ / "missing_dir" / "t.safetensors").string(), {{"a", DType::kF32, {4}}});
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("cannot create"), std::string::npos);
}

TEST_F(SafetensorsFiles, TruncatedFileIsRejected) {
  const std::vector<float> a(64, 1.0f);
  const std::string path = (dir_ / "t.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, {{{"a", DType::kF32, {64}}, a.data()}}).ok());
  fs::resize_file(path, fs::file_size(path) - 10);
  auto f = SafetensorsFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("past the end"), std::string::npos) << f.status().message();
}

TEST_F(SafetensorsFiles, ShardedIndexIsFollowedAndChecked) {
  const std::vector<float> a = {1, 2}, b = {3, 4};
  ASSERT_TRUE(WriteSafetensors((dir_ / "s1.safetensors").string(), {{{"a", DType::kF32, {2}}, a.data()}}).ok());
  ASSERT_TRUE(WriteSafetensors((dir_ / "s2.safetensors").string(), {{{"b", DType::kF32, {2}}, b.data()},
                                                                    {{"extra", DType::kF32, {2}}, b.data()}})
                  .ok());
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})";
  auto store = TensorStore::Open(dir_.string());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_NE((*store)->Find("a"), nullptr);
  EXPECT_NE((*store)->Find("b"), nullptr);
  EXPECT_EQ((*store)->Find("extra"), nullptr);  // not in the index: not part of the checkpoint
  // An index entry pointing at the wrong shard is an error naming the tensor.
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}})";
  store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("'a'"), std::string::npos) << store.status().message();
  // A missing shard names the file.
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"a":"s9.safetensors"}})";
  store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("s9.safetensors"), std::string::npos);
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"a":"../s1.safetensors"}})";
  EXPECT_FALSE(TensorStore::Open(dir_.string()).ok());
}

TEST_F(SafetensorsFiles, MissingCheckpointIsNamed) {
  auto store = TensorStore::Open(dir_.string());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
