// The GPT-2 byte-level alphabet: every byte 0..255 is shown as one printable
// code point (printable Latin-1 bytes as themselves, the rest as U+0100 + n),
// so vocab and merges in tokenizer.json are text. dsv3 works on raw bytes
// internally and converts only when reading or writing tokenizer.json.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3::byte_level {

// The code point byte b is shown as.
uint32_t ByteToCodePoint(uint8_t b);
// The byte shown as code point cp, or -1 when cp is not in the alphabet.
int CodePointToByte(uint32_t cp);

// Raw bytes -> byte-level text (UTF-8).
std::string Encode(std::string_view bytes);
// Byte-level text -> raw bytes. Returns false (leaving `out` unspecified)
// when a character is outside the alphabet.
bool Decode(std::string_view text, std::string* out);

}  // namespace dsv3::byte_level
