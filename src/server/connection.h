// One client connection of `dsv3 serve` and the limits it is held to. A
// connection belongs either to the connection gate (connection_gate.h), which
// waits for a complete request head, and for a body of declared length,
// without occupying a worker thread, or to one worker thread while that
// thread serves one request on it; it moves between the two by value
// (std::unique_ptr), never shared. Bytes the gate read (the head, the body,
// the start of a pipelined request) stay in `pending` and are served to
// httplib before the socket is read again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "server/request_head.h"

namespace dsv3::server {

struct ConnectionLimits {
  double header_timeout_s = 10;   // whole request head, from the first byte (or accept)
  double body_timeout_s = 60;     // whole body, from the end of the head
  double idle_timeout_s = 10;     // idle keep-alive; a read or write making no progress
  double linger_s = 2;            // after a refusal: read and discard the rest this long
  int max_connections = 1024;     // open client connections in total
  int max_connections_per_ip = 256;
  size_t max_head_bytes = 64 << 10;  // request line + headers (431 above)
  size_t max_body_bytes = 8u << 20;  // 413 above (chunked bodies are capped while read)
  int64_t max_request_memory = int64_t{1} << 30;  // bytes charged to requests in flight (503 above)
  double body_memory_factor = 12;  // charge per body byte (measured, docs/server.md)
  int max_keep_alive_requests = 1000;
  int light_threads = 4;          // workers for body-less GET/HEAD/OPTIONS (/health, /metrics)
  int worker_threads = 88;        // workers for everything else
  size_t worker_stack_bytes = 8u << 20;
  std::string cors_origin;        // copied onto the gate's own refusals
};

struct Connection {
  enum class Phase { kHead, kBody, kKeepAlive, kLinger };
  int fd = -1;
  std::string ip;
  int port = 0;
  Phase phase = Phase::kHead;
  double deadline = 0;      // monotonic seconds: the current phase ends then
  double since = 0;         // when it started waiting in the gate (eviction order)
  std::string pending;      // bytes read from the socket but not yet consumed
  size_t head_bytes = 0;    // the head's length at the front of `pending` (when dispatched)
  size_t scanned = 0;       // how far `pending` was searched for the end of the head
  RequestHead head;         // of the request being served
  int64_t charge = 0;       // bytes reserved against --max-request-memory
  int64_t discarded = 0;    // bytes read and dropped while lingering after a refusal
  int requests = 0;         // served on this connection so far
};

}  // namespace dsv3::server
