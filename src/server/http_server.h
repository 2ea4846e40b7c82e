// The OpenAI-compatible HTTP front end (cpp-httplib): POST /v1/completions,
// /v1/chat/completions and /v1/responses (JSON or Server-Sent Events), GET /v1/models, /health,
// /metrics and the chat page at /. Every refusal is an OpenAI-style JSON error
// with a 4xx/5xx status; an optional API key is checked on every request but
// the static page. Generation runs on the Scheduler; HTTP worker threads only
// parse, wait and write. A streaming client that goes away cancels its
// sequence. Shutdown() drains: new requests get 503, queued ones are cancelled,
// running ones get `shutdown_grace_s` to finish before they are cancelled, and
// every open stream is closed with a final event before the listener stops.
// Connections are handled by http_transport.h: deadlines for request heads
// and bodies, connection caps per client IP and in total, and a bound on the
// memory held by requests in flight.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"
#include "runtime/scheduler.h"
#include "server/api.h"
#include "server/connection.h"
#include "server/constraints.h"
#include "server/metrics.h"
#include "server/text_codec.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace dsv3::server {

class ChoiceSet;
class GuardedServer;
class SseStream;
class Transport;
struct ActiveGuard;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see port())
  std::string api_key;              // "" = no authentication
  std::string model_name = "dsv3";  // the id /v1/models lists and requests may name
  std::string cors_origin;          // "" = no CORS headers
  size_t max_body_bytes = 8u << 20;  // larger request bodies get 413
  int64_t default_max_tokens = 512;  // when a request gives none (capped by the context)
  // What a request leaves unset: OpenAI's defaults (temperature 1), with the
  // checkpoint's generation_config.json over them when it has one.
  SamplingOptions sampling_defaults = OpenAiSampling();
  int max_choices = 16;             // the largest `n` a request may ask for
  double request_timeout_s = 600;   // a generation running longer ends with an error
  int idle_timeout_s = 10;          // idle keep-alive connections, and stalled reads/writes, are dropped
  double header_timeout_s = 10;     // a request's line and headers must arrive within this (total)
  double body_timeout_s = 60;       // its body within this after the headers (total)
  int max_connections = 1024;       // open client connections (capped by the open-file limit)
  int max_connections_per_ip = 256;
  int64_t max_request_memory = int64_t{1} << 30;  // bytes charged to requests in flight (503 above)
  double shutdown_grace_s = 10;     // running requests get this long to finish on shutdown
  int http_threads = 0;             // 0: max_sequences + max_queue + 16
  bool web_ui = true;
  bool log_requests = true;         // one line per request on stderr
};

// A request's prompt ids, and whether the chat template left the reply
// inside <think>.
struct EncodedPrompt {
  std::vector<int32_t> ids;
  bool starts_in_reasoning = false;
};

class HttpServer {
 public:
  HttpServer(Scheduler& scheduler, const TextCodec& codec, const ServerOptions& options);
  ~HttpServer();

  Status Bind();                  // binds host:port and starts the connection threads
  int port() const { return port_; }
  void Serve();                   // blocks until Shutdown() has completed
  void Shutdown();                // graceful; any thread; idempotent

 private:
  struct ActiveCount;
  void Configure();
  void Routes();
  // An endpoint's body -> validated request (ParseRequest for chat and
  // completions; /v1/responses maps its own body onto a chat request).
  using BodyParser = std::function<std::optional<ApiRequest>(const std::string& body, ApiError* error,
                                                             const RequestDefaults& defaults)>;
  // Body -> validated request -> prompt ids; a large body waits its turn.
  std::optional<EncodedPrompt> Decode(const httplib::Request& req, const BodyParser& parse,
                                      std::optional<ApiRequest>& r, ApiError* error);
  std::optional<EncodedPrompt> DecodeBody(const httplib::Request& req, const BodyParser& parse,
                                          std::optional<ApiRequest>& r, ApiError* error);
  // Checks the prompt and max_tokens against the context (the 400 names
  // `prompt_field`) and submits the request's choices as one group; null and
  // *error when refused.
  std::shared_ptr<ChoiceSet> Launch(const ApiRequest& r, EncodedPrompt&& prompt, double arrived,
                                    const std::string& prompt_field, ApiError* error);
  // Answers `res` with `stream` (its choices and guard set here) as SSE.
  void StartStream(const httplib::Request& req, httplib::Response& res, std::shared_ptr<SseStream> stream,
                   std::shared_ptr<ChoiceSet> choices, std::shared_ptr<ActiveGuard> active);
  void HandleGeneration(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  void HandleResponses(const httplib::Request& req, httplib::Response& res);  // responses_handler.cc
  void HandleModels(const httplib::Request& req, httplib::Response& res);
  void HandleHealth(httplib::Response& res);
  bool Authorized(const httplib::Request& req) const;
  void Log(const httplib::Request& req, const httplib::Response& res);
  void HousekeepingLoop();
  void LogRefusal(int status, std::string_view request_line);

  Scheduler& scheduler_;
  const TextCodec& codec_;
  ServerOptions options_;
  ConstraintGrammars grammars_;  // structured outputs: grammars of response_format / tool_choice
  Metrics metrics_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<GuardedServer> http_;
  int port_ = -1;
  int64_t started_ = 0;  // unix seconds
  std::atomic<bool> draining_{false}, shutdown_started_{false}, stopped_{false};
  std::atomic<int> active_{0};  // generation responses not yet fully written
  static constexpr size_t kLargeBodyBytes = 1 << 20;
  static constexpr std::ptrdiff_t kMaxLargeDecodes = 64;
  std::counting_semaphore<kMaxLargeDecodes> large_decodes_;  // half the cores (at least 1) decode large bodies
  std::thread housekeeping_;
};

// Sends an OpenAI-style error body with its status.
void SendError(httplib::Response& res, const ApiError& error);

// The connection limits `options` ask for, with worker threads for a
// scheduler of `max_sequences` slots and `max_queue` waiting requests.
ConnectionLimits LimitsFor(const ServerOptions& options, int64_t max_sequences, int64_t max_queue);

}  // namespace dsv3::server
