// GGUF files whose tensors are ggml block types (Q4_0 .. IQ4_XS): the reader
// recognises each type, sizes it from its block geometry and hands out the
// bytes in place (a pointer into the mapping, nothing expanded); a row length
// that is not a multiple of the block, data cut short and an unknown type id
// are errors naming the tensor and the type.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "convert_test_util.h"
#include "core/ggml_quants.h"
#include "io/gguf.h"

namespace dsv3 {
namespace {

using namespace testing_util;

struct TypeCase {
  GgmlType ggml;
  DType dtype;
};
constexpr TypeCase kCases[] = {
    {GgmlType::kQ4_0, DType::kQ4_0}, {GgmlType::kQ4_1, DType::kQ4_1},   {GgmlType::kQ5_0, DType::kQ5_0},
    {GgmlType::kQ5_1, DType::kQ5_1}, {GgmlType::kQ8_0, DType::kQ8_0},   {GgmlType::kQ2_K, DType::kQ2_K},
    {GgmlType::kQ3_K, DType::kQ3_K}, {GgmlType::kQ4_K, DType::kQ4_K},   {GgmlType::kQ5_K, DType::kQ5_K},
    {GgmlType::kQ6_K, DType::kQ6_K}, {GgmlType::kIQ4_NL, DType::kIQ4_NL}, {GgmlType::kIQ4_XS, DType::kIQ4_XS},
};

// Writes `path` with one [rows, cols] tensor "w" of type t holding `blocks`.
void WriteOne(const std::string& path, GgmlType t, int64_t rows, int64_t cols, const std::vector<uint8_t>& blocks) {
  GgufTensorSpec spec{"w", t, {cols, rows}};
  auto w = GgufWriter::Create(path, {{"general.architecture", GgufValue::Str("test")}}, {spec});
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE((*w)->Write(blocks.data(), blocks.size()).ok());
  ASSERT_TRUE((*w)->Finish().ok());
}

std::vector<uint8_t> Quantized(DType t, int64_t rows, int64_t cols) {
  std::vector<float> x(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) x[i] = std::sin(0.1f * static_cast<float>(i)) * 0.3f;
  std::vector<uint8_t> b(DTypeBytes(t, rows * cols));
  QuantizeBlocks(t, x.data(), rows * cols, b.data());
  return b;
}

std::string ReadAll(const std::string& path) { return ReadTextFile(path).value(); }

TEST(GgufQuant, EveryTypeLoadsInPlace) {
  const std::string dir = ScratchDir();
  for (const TypeCase& c : kCases) {
    SCOPED_TRACE(DTypeName(c.dtype));
    const int64_t rows = 3, cols = 2 * DTypeBlockElems(c.dtype);
    const std::vector<uint8_t> blocks = Quantized(c.dtype, rows, cols);
    const std::string path = dir + "/" + std::string(DTypeName(c.dtype)) + ".gguf";
    WriteOne(path, c.ggml, rows, cols, blocks);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    const GgufTensorInfo* t = (*f)->FindTensor("w");
    ASSERT_NE(t, nullptr);
    ASSERT_TRUE(t->dtype.has_value());
    EXPECT_EQ(*t->dtype, c.dtype);
    EXPECT_EQ(GgmlTypeName(t->ggml_type), std::string(DTypeName(c.dtype)));
    EXPECT_EQ(t->nbytes, blocks.size());  // stored size: no expansion
    EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->nbytes), blocks);
    EXPECT_EQ(GgmlFromDType(c.dtype), c.ggml);
  }
}

// The offset of tensor "w"'s info record (its name's length field) in a file.
size_t InfoAt(const std::string& bytes) {
  const std::string key = std::string("\x01\0\0\0\0\0\0\0", 8) + "w";
  const size_t at = bytes.find(key);
  EXPECT_NE(at, std::string::npos);
  return at;
}

Expected<std::unique_ptr<GgufFile>> ParseBytes(const std::string& b) {
  return GgufFile::Parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "f.gguf");
}

TEST(GgufQuant, BadSizesAndTypesAreErrorsNamingTensorAndType) {
  const std::string path = ScratchDir() + "/q4k.gguf";
  WriteOne(path, GgmlType::kQ4_K, 2, 512, Quantized(DType::kQ4_K, 2, 512));
  const std::string good = ReadAll(path);
  ASSERT_TRUE(ParseBytes(good).ok());
  const size_t info = InfoAt(good);  // u64 name length, "w", u32 dims, u64 ne0, u64 ne1, u32 type, u64 offset
  const size_t ne0_at = info + 9 + 4, type_at = ne0_at + 16;

  std::string bad = good;
  const uint64_t ne0 = 384;  // 1.5 Q4_K blocks
  std::memcpy(&bad[ne0_at], &ne0, 8);
  auto r = ParseBytes(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'w'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("Q4_K block size 256"), std::string::npos) << r.status().message();

  bad = good;
  const uint32_t unknown = 99;
  std::memcpy(&bad[type_at], &unknown, 4);
  r = ParseBytes(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'w' has unknown ggml type 99"), std::string::npos) << r.status().message();

  r = ParseBytes(good.substr(0, good.size() - 100));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'w' (Q4_K)"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();

  bad = good;  // Q4_K -> Q6_K: same row length, 210 instead of 144 bytes per block: past the end
  const uint32_t q6k = 14;
  std::memcpy(&bad[type_at], &q6k, 4);
  r = ParseBytes(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'w' (Q6_K)"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace dsv3
