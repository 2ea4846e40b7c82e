// The OpenAI-compatible HTTP front end (cpp-httplib): POST /v1/completions and
// /v1/chat/completions (JSON or Server-Sent Events), GET /v1/models, /health,
// /metrics and the chat page at /. Every refusal is an OpenAI-style JSON error
// with a 4xx/5xx status; an optional API key is checked on every request but
// the static page. Generation runs on the Scheduler; HTTP worker threads only
// parse, wait and write. A streaming client that goes away cancels its
// sequence. Shutdown() drains: new requests get 503, queued ones are cancelled,
// running ones get `shutdown_grace_s` to finish before they are cancelled, and
// every open stream is closed with a final event before the listener stops.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "core/status.h"
#include "runtime/scheduler.h"
#include "server/api.h"
#include "server/metrics.h"
#include "server/text_codec.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dsv3::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see port())
  std::string api_key;              // "" = no authentication
  std::string model_name = "dsv3";  // the id /v1/models lists and requests may name
  std::string cors_origin;          // "" = no CORS headers
  size_t max_body_bytes = 8u << 20;  // larger request bodies get 413
  int64_t default_max_tokens = 512;  // when a request gives none (capped by the context)
  double request_timeout_s = 600;   // a generation running longer ends with an error
  int idle_timeout_s = 10;          // idle keep-alive connections, and stalled reads/writes, are dropped
  double shutdown_grace_s = 10;     // running requests get this long to finish on shutdown
  int http_threads = 0;             // 0: max_sequences + max_queue + 16
  bool web_ui = true;
  bool log_requests = true;         // one line per request on stderr
};

class HttpServer {
 public:
  HttpServer(Scheduler& scheduler, const TextCodec& codec, const ServerOptions& options);
  ~HttpServer();

  Status Bind();                  // binds host:port
  int port() const { return port_; }
  void Serve();                   // blocks until Shutdown() has completed
  void Shutdown();                // graceful; any thread; idempotent

 private:
  struct ActiveCount;
  void Configure();
  void Routes();
  void HandleGeneration(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  void HandleModels(const httplib::Request& req, httplib::Response& res);
  void HandleHealth(httplib::Response& res);
  bool Authorized(const httplib::Request& req) const;
  void Log(const httplib::Request& req, const httplib::Response& res);
  void HousekeepingLoop();

  Scheduler& scheduler_;
  const TextCodec& codec_;
  ServerOptions options_;
  Metrics metrics_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = -1;
  int64_t started_ = 0;  // unix seconds
  std::atomic<bool> draining_{false}, shutdown_started_{false}, stopped_{false};
  std::atomic<int> active_{0};  // generation responses not yet fully written
  std::thread housekeeping_;
};

// Sends an OpenAI-style error body with its status.
void SendError(httplib::Response& res, const ApiError& error);

}  // namespace dsv3::server
