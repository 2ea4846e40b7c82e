// Request-head framing checks; see request_head.h. The rules mirror how
// cpp-httplib 0.11 reads a head (first Content-Length via strtoull, first
// Transfer-Encoding compared with "chunked", lines split on '\n'), so that
// whatever passes here is read by httplib exactly as it was checked.
#include "server/request_head.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace dsv3::server {

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

HeadCheck Refuse(int status, std::string message) {
  HeadCheck c;
  c.status = status;
  c.message = std::move(message);
  return c;
}

// Shortens a client-supplied value for an error message.
std::string Quote(std::string_view v) {
  std::string s(v.substr(0, 40));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return "'" + s + (v.size() > 40 ? "...'" : "'");
}

// Splits the head into lines at CRLF; false if a bare CR or LF appears
// (httplib splits on LF alone and would see different headers).
bool SplitLines(std::string_view head, std::vector<std::string_view>* lines) {
  size_t start = 0;
  while (start < head.size()) {
    const size_t crlf = head.find("\r\n", start);
    if (crlf == std::string_view::npos) return false;
    const std::string_view line = head.substr(start, crlf - start);
    if (line.find_first_of("\r\n") != std::string_view::npos) return false;
    lines->push_back(line);
    start = crlf + 2;
  }
  return true;
}

struct Framing {
  std::vector<std::string_view> lengths, codings, encodings;
  bool expect_continue = false;
};

// Collects the framing headers; a refusal status when a line is malformed.
HeadCheck ReadFraming(const std::vector<std::string_view>& lines, Framing* f) {
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.empty()) break;  // the blank line that ends the head
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Refuse(400, "malformed header line " + Quote(line));
    const std::string_view name = line.substr(0, colon), value = Trim(line.substr(colon + 1));
    if (name.find_first_of(" \t") != std::string_view::npos)
      return Refuse(400, "whitespace in header name " + Quote(name));
    if (IEquals(name, "Content-Length")) f->lengths.push_back(value);
    if (IEquals(name, "Transfer-Encoding")) f->codings.push_back(value);
    if (IEquals(name, "Content-Encoding")) f->encodings.push_back(value);
    if (IEquals(name, "Expect") && IEquals(value, "100-continue")) f->expect_continue = true;
  }
  return {};
}

// One decimal length, identical in every Content-Length header.
HeadCheck ParseLength(const std::vector<std::string_view>& lengths, int64_t* out) {
  for (std::string_view v : lengths) {
    if (v != lengths[0]) return Refuse(400, "conflicting Content-Length headers");
  }
  const std::string_view v = lengths[0];
  if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Refuse(400, "invalid Content-Length " + Quote(v) + ": must be a non-negative decimal integer");
  *out = std::stoll(std::string(v));
  return {};
}

}  // namespace

size_t FindHeadEnd(std::string_view buffer, size_t from) {
  const size_t start = from >= 3 ? from - 3 : 0;
  const size_t at = buffer.find("\r\n\r\n", start);
  return at == std::string_view::npos ? std::string_view::npos : at + 4;
}

bool PlausibleHeadStart(std::string_view partial) {
  constexpr size_t kLongestMethod = 20;
  const size_t space = partial.find(' ');
  const std::string_view method = partial.substr(0, std::min(space, partial.size()));
  if (space == 0 || method.size() > kLongestMethod) return false;
  for (char c : method)
    if (!std::isalpha(static_cast<unsigned char>(c)) && c != '-') return false;
  for (char c : partial) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\r' && c != '\n') || u == 0x7f) return false;
  }
  return true;
}

HeadCheck CheckRequestHead(std::string_view head, size_t max_body_bytes) {
  std::vector<std::string_view> lines;
  if (!SplitLines(head, &lines) || lines.empty()) return Refuse(400, "malformed HTTP request head (bare CR or LF)");
  HeadCheck c;
  const size_t space = lines[0].find(' ');
  if (space == std::string_view::npos || space == 0) return Refuse(400, "malformed HTTP request line");
  c.head.method = std::string(lines[0].substr(0, space));
  Framing f;
  if (HeadCheck bad = ReadFraming(lines, &f); bad.status) return bad;
  c.head.expect_continue = f.expect_continue;
  for (std::string_view e : f.encodings)
    if (!e.empty() && !IEquals(e, "identity"))
      return Refuse(415, "Content-Encoding " + Quote(e) + " is not supported: send the body uncompressed");
  if (!f.codings.empty()) {
    if (!f.lengths.empty()) return Refuse(400, "both Content-Length and Transfer-Encoding given");
    if (f.codings.size() > 1 || !IEquals(f.codings[0], "chunked"))
      return Refuse(501, "Transfer-Encoding " + Quote(f.codings[0]) + " is not supported (only chunked)");
    c.head.chunked = true;
  }
  if (!f.lengths.empty()) {
    if (HeadCheck bad = ParseLength(f.lengths, &c.head.content_length); bad.status) return bad;
    if (static_cast<uint64_t>(c.head.content_length) > max_body_bytes)
      return Refuse(413, "the request body is too large (" + std::to_string(c.head.content_length) +
                             " bytes; --max-body is " + std::to_string(max_body_bytes) + ")");
  }
  const std::string& m = c.head.method;
  if ((m == "POST" || m == "PUT" || m == "PATCH") && f.lengths.empty() && !c.head.chunked)
    return Refuse(411, "a " + m + " request needs a Content-Length header");
  return c;
}

int64_t RequestCharge(const RequestHead& head, size_t head_bytes, size_t max_body_bytes, double body_factor) {
  const double body = head.chunked ? static_cast<double>(max_body_bytes)
                                   : static_cast<double>(std::max<int64_t>(head.content_length, 0));
  return static_cast<int64_t>(head_bytes) + static_cast<int64_t>(body * body_factor);
}

}  // namespace dsv3::server
