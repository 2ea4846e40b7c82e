// UTF-8 helpers shared by the tokenizer: decoding one code point, validating,
// the lossy repair Rust's String::from_utf8_lossy and node's Buffer.toString
// perform (each maximal invalid subpart becomes one U+FFFD), and the Unicode
// White_Space test HF's added-token lstrip/rstrip uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3::utf8 {

inline constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at s[i] (1..4), or 0 when the
// bytes there are not a complete well-formed sequence. `*valid_prefix` (if
// given) receives how many bytes form the longest prefix of a well-formed
// sequence (the "maximal subpart"; at least 1 byte is always consumed).
size_t SequenceLength(std::string_view s, size_t i, size_t* valid_prefix = nullptr);

// True when the bytes at s[i..] are an incomplete but so-far well-formed
// sequence that more bytes could complete (used by the streaming decoder).
bool IsIncompletePrefix(std::string_view s, size_t i);

bool IsValid(std::string_view s);

// Replaces every maximal invalid subpart with U+FFFD (WHATWG / Unicode
// "substitution of maximal subparts", identical to from_utf8_lossy).
std::string Lossy(std::string_view s);

// Decodes the code point at s[i] of valid UTF-8 and advances i.
uint32_t Next(std::string_view s, size_t& i);
// Decodes the code point that ends at s[end) of valid UTF-8; sets *start.
uint32_t Prev(std::string_view s, size_t end, size_t* start);

void Append(std::string& out, uint32_t cp);

// Unicode White_Space (Rust's char::is_whitespace).
bool IsWhitespace(uint32_t cp);

}  // namespace dsv3::utf8
