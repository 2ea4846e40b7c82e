// PCRE2 wrapper; see regex.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <cstdio>
#include <span>

namespace dsv3 {

namespace {

pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

struct CodeRange {
  uint32_t first, last;
};
#include "tokenizer/unicode_delta.inc"

// Rust's char::is_whitespace set, which Oniguruma's \s matches (PCRE2's \s
// also matches U+180E).
constexpr char kWhiteSpace[] =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

std::string RangesText(std::span<const CodeRange> ranges) {
  std::string out;
  char buf[48];
  for (const CodeRange& r : ranges) {
    if (r.first == 0 && r.last == 0) continue;  // the generator's "empty" marker
    std::snprintf(buf, sizeof(buf), r.first == r.last ? "\\x{%X}" : "\\x{%X}-\\x{%X}", r.first, r.last);
    out += buf;
  }
  return out;
}

// The code points PCRE2's older Unicode tables lack for \p{X}, as class items.
const char* Extra(char x, std::string* out) {
  switch (x) {
    case 'L': *out = RangesText(kLAdd); break;
    case 'M': *out = RangesText(kMAdd); break;
    case 'N': *out = RangesText(kNAdd); break;
    case 'P': *out = RangesText(kPAdd); break;
    case 'S': *out = RangesText(kSAdd); break;
    default: return nullptr;
  }
  return out->c_str();
}

}  // namespace

// HF's regexes run on Oniguruma, whose Unicode tables are newer than the
// PCRE2 most systems ship. Widen \p{L} \p{M} \p{N} \p{P} \p{S} by the
// code points PCRE2 does not know yet and make \s / \S mean White_Space, so
// both engines split text identically (tests/node/unicode_delta.js made the
// table by comparing the two engines over every code point).
std::string AlignUnicodeClasses(const std::string& p) {
  std::string out, extra;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 'p' && i + 4 < p.size() && p[i + 2] == '{' && p[i + 4] == '}' && Extra(p[i + 3], &extra)) {
        const std::string item = std::string("\\p{") + p[i + 3] + "}" + extra;
        out += in_class ? item : "[" + item + "]";
        i += 4;
      } else if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : std::string("[") + kWhiteSpace + "]";
        i += 1;
      } else if (e == 'S' && !in_class) {
        out += std::string("[^") + kWhiteSpace + "]";
        i += 1;
      } else {
        out += c, out += e;
        i += 1;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
      const size_t end = p.find(":]", i + 2);
      if (end != std::string::npos) {
        out.append(p, i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Expected<std::unique_ptr<Regex>> Regex::Compile(const std::string& pattern, const std::string& label) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  const std::string aligned = AlignUnicodeClasses(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(aligned.data()), aligned.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return Status::Error(label + ": regex does not compile at offset " + std::to_string(offset) + ": " +
                         reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation: if this PCRE2 build lacks it, matching falls back
  // to the interpreter with identical results.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto re = std::unique_ptr<Regex>(new Regex());
  re->pattern_ = pattern;
  re->code_ = code;
  return re;
}

Regex::~Regex() { pcre2_code_free(Code(code_)); }

RegexScratch::RegexScratch() {
  match_data_ = pcre2_match_data_create(1, nullptr);
  context_ = pcre2_match_context_create(nullptr);
  // Long runs of whitespace under `\s+(?!\S)` recurse deeply: give the JIT
  // room (it grows up to the maximum on demand).
  jit_stack_ = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
  pcre2_jit_stack_assign(static_cast<pcre2_match_context*>(context_), nullptr, jit_stack_);
}

RegexScratch::~RegexScratch() {
  pcre2_jit_stack_free(static_cast<pcre2_jit_stack*>(jit_stack_));
  pcre2_match_context_free(static_cast<pcre2_match_context*>(context_));
  pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_));
}

Status Regex::Split(std::string_view subject, RegexScratch& scratch, std::vector<RegexSpan>& out) const {
  auto* md = static_cast<pcre2_match_data*>(scratch.match_data_);
  auto* ctx = static_cast<pcre2_match_context*>(scratch.context_);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t n = subject.size();
  size_t pos = 0, prev = 0;
  while (pos <= n) {
    const int rc = pcre2_match(Code(code_), s, n, pos, PCRE2_NO_UTF_CHECK, md, ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      return Status::Error("regex '" + pattern_ + "' failed: " + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t begin = ov[0], end = ov[1];
    if (end == begin) {  // empty match: skip one code point
      pos = end + 1;
      while (pos < n && (static_cast<uint8_t>(subject[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (begin > prev) out.push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(begin), false});
    out.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(end), true});
    prev = pos = end;
  }
  if (prev < n) out.push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(n), false});
  return Status::Ok();
}

bool Regex::MatchesAt(std::string_view subject, size_t pos, RegexScratch& scratch) const {
  auto* md = static_cast<pcre2_match_data*>(scratch.match_data_);
  auto* ctx = static_cast<pcre2_match_context*>(scratch.context_);
  return pcre2_match(Code(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), pos,
                     PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, md, ctx) >= 0;
}

}  // namespace dsv3
