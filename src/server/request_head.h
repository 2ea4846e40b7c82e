// What the connection gate (connection_gate.h) must know about a request
// before any worker thread touches it: where the head (request line and
// headers) ends, the method, and how the body is framed. A request whose
// framing dsv3 would read differently from a proxy in front of it, or whose
// body size nothing bounds, is refused here with its HTTP status: a negative
// or malformed Content-Length (cpp-httplib would read "-5" as 2^64 - 5),
// conflicting lengths, Content-Length together with Transfer-Encoding, a
// transfer coding other than chunked, a compressed body (cpp-httplib would
// inflate it past --max-body), a body over --max-body, a POST without a
// length, and stray CR/LF bytes or whitespace in header names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3::server {

struct RequestHead {
  std::string method;
  int64_t content_length = -1;  // -1: no Content-Length header
  bool chunked = false;         // Transfer-Encoding: chunked
  bool expect_continue = false;  // Expect: 100-continue (the body follows httplib's 100 response)
  // A request without a body that only reads server state (GET, HEAD,
  // OPTIONS): served by the small pool that keeps /health answering.
  bool light() const { return content_length <= 0 && !chunked && (method == "GET" || method == "HEAD" || method == "OPTIONS"); }
};

struct HeadCheck {
  int status = 0;  // 0: acceptable; else the HTTP status to refuse it with
  std::string message;
  RequestHead head;
};

// Offset just past the "\r\n\r\n" that ends the head in `buffer`, or
// std::string_view::npos while it is incomplete. `from` is where the previous
// search stopped, so a head arriving in pieces is scanned once.
size_t FindHeadEnd(std::string_view buffer, size_t from = 0);

// False once the first bytes of a head cannot be HTTP (a method token, then a
// space; no control bytes but tab, CR and LF): a TLS handshake or binary
// garbage is refused at once instead of waiting out --header-timeout.
bool PlausibleHeadStart(std::string_view partial);

// Checks a complete head (up to and including its blank line).
HeadCheck CheckRequestHead(std::string_view head, size_t max_body_bytes);

// Bytes of memory a request is charged against --max-request-memory while it
// is in flight: its head, plus its body times `body_factor` (what the body
// becomes once read, parsed and turned into a prompt). A chunked body of
// unknown size is charged as the largest allowed.
int64_t RequestCharge(const RequestHead& head, size_t head_bytes, size_t max_body_bytes, double body_factor);

}  // namespace dsv3::server
