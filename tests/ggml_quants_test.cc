// dsv3's ggml block codecs against vectors made by ggml itself
// (tests/data/ggml_quants, see its README): every decoded float bit for bit,
// and every encoded byte of quantize_row_*_ref.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/ggml_quants.h"

namespace dsv3 {
namespace {

struct Vectors {
  std::vector<uint8_t> dq_blocks;
  std::vector<float> dq_out;
  std::vector<float> q_in;
  std::vector<uint8_t> q_blocks;
};

bool ReadVectors(const std::string& name, DType t, Vectors& v) {
  const std::string path = std::string(DSV3_GOLDEN_DIR) + "/../data/ggml_quants/" + name + ".bin";
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    ADD_FAILURE() << "cannot open " << path;
    return false;
  }
  uint32_t head[4] = {};
  bool ok = std::fread(head, 4, 4, f) == 4 && head[0] == 0x56515344u;
  const int64_t be = DTypeBlockElems(t), bb = DTypeBlockBytes(t);
  if (ok) {
    v.dq_blocks.resize(head[2] / be * bb);
    v.dq_out.resize(head[2]);
    v.q_in.resize(head[3]);
    v.q_blocks.resize(head[3] / be * bb);
    ok = std::fread(v.dq_blocks.data(), 1, v.dq_blocks.size(), f) == v.dq_blocks.size() &&
         std::fread(v.dq_out.data(), 4, v.dq_out.size(), f) == v.dq_out.size() &&
         std::fread(v.q_in.data(), 4, v.q_in.size(), f) == v.q_in.size() &&
         std::fread(v.q_blocks.data(), 1, v.q_blocks.size(), f) == v.q_blocks.size() &&
         std::fgetc(f) == EOF;
  }
  std::fclose(f);
  EXPECT_TRUE(ok) << path << " is malformed";
  return ok && !v.dq_out.empty() && !v.q_in.empty();
}

struct Case {
  const char* name;
  DType type;
};

class GgmlQuantsTest : public ::testing::TestWithParam<Case> {};

TEST_P(GgmlQuantsTest, DequantizeMatchesGgmlBitForBit) {
  Vectors v;
  if (!ReadVectors(GetParam().name, GetParam().type, v)) return;
  std::vector<float> out(v.dq_out.size(), -1.0f);
  DequantizeBlocks(GetParam().type, v.dq_blocks.data(), static_cast<int64_t>(out.size()), out.data());
  int64_t mismatches = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (FloatBits(out[i]) != FloatBits(v.dq_out[i]) && mismatches++ < 5)
      ADD_FAILURE() << GetParam().name << " element " << i << ": dsv3 " << out[i] << ", ggml " << v.dq_out[i];
  EXPECT_EQ(mismatches, 0) << "of " << out.size();
}

TEST_P(GgmlQuantsTest, QuantizeMatchesGgmlRefByteForByte) {
  Vectors v;
  if (!ReadVectors(GetParam().name, GetParam().type, v)) return;
  std::vector<uint8_t> blocks(v.q_blocks.size(), 0xAB);
  QuantizeBlocks(GetParam().type, v.q_in.data(), static_cast<int64_t>(v.q_in.size()), blocks.data());
  const int64_t bb = DTypeBlockBytes(GetParam().type);
  int64_t bad = 0;
  for (size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i] != v.q_blocks[i] && bad++ < 5)
      ADD_FAILURE() << GetParam().name << " block " << i / bb << " byte " << i % bb << ": dsv3 " << int(blocks[i])
                    << ", ggml " << int(v.q_blocks[i]);
  EXPECT_EQ(bad, 0) << "of " << blocks.size() << " bytes";
}

// Decoding what the encoder wrote lands near the input (a sanity check on
// the pair, independent of the vectors' particular values).
TEST_P(GgmlQuantsTest, RoundTripIsClose) {
  const DType t = GetParam().type;
  const int64_t n = 4 * 256;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
  std::vector<uint8_t> b(DTypeBytes(t, n));
  QuantizeBlocks(t, x.data(), n, b.data());
  DequantizeBlocks(t, b.data(), n, y.data());
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) err += (x[i] - y[i]) * (x[i] - y[i]), ref += x[i] * x[i];
  const double bound = t == DType::kQ2_K ? 0.4 : 0.25;  // 2 bits: ~0.3 relative RMS here
  EXPECT_LT(std::sqrt(err / ref), bound) << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, GgmlQuantsTest,
    ::testing::Values(Case{"q4_0", DType::kQ4_0}, Case{"q4_1", DType::kQ4_1}, Case{"q5_0", DType::kQ5_0},
                      Case{"q5_1", DType::kQ5_1}, Case{"q8_0", DType::kQ8_0}, Case{"q2_k", DType::kQ2_K},
                      Case{"q3_k", DType::kQ3_K}, Case{"q4_k", DType::kQ4_K}, Case{"q5_k", DType::kQ5_K},
                      Case{"q6_k", DType::kQ6_K}, Case{"iq4_nl", DType::kIQ4_NL}, Case{"iq4_xs", DType::kIQ4_XS}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace dsv3
