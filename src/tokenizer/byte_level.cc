// GPT-2 byte <-> code point table; see byte_level.h.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace dsv3::byte_level {

namespace {

bool Printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct Table {
  std::array<uint32_t, 256> to_cp{};
  Table() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) to_cp[b] = Printable(b) ? static_cast<uint32_t>(b) : next++;
  }
};

const Table& GetTable() {
  static const Table table;  // immutable after construction
  return table;
}

}  // namespace

uint32_t ByteToCodePoint(uint8_t b) { return GetTable().to_cp[b]; }

int CodePointToByte(uint32_t cp) {
  if (cp < 256) return Printable(static_cast<int>(cp)) ? static_cast<int>(cp) : -1;
  if (cp >= 256 + 68) return -1;  // 68 = bytes that are not printable
  const auto& t = GetTable().to_cp;
  for (int b = 0; b < 256; ++b)
    if (t[b] == cp) return b;
  return -1;
}

std::string Encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8::Append(out, ByteToCodePoint(static_cast<uint8_t>(c)));
  return out;
}

bool Decode(std::string_view text, std::string* out) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = utf8::SequenceLength(text, i);
    if (n == 0) return false;
    const uint32_t cp = utf8::Next(text, i);
    const int b = CodePointToByte(cp);
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace dsv3::byte_level
