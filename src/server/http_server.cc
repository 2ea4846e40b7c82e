// Server set-up, routing, authentication, the small endpoints and graceful
// shutdown; the generation endpoints are in completion_handler.cc and
// responses_handler.cc.
#include "server/http_server.h"

#include <httplib.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "server/http_transport.h"
#include "server/responses.h"
#include "server/socket_stream.h"

namespace dsv3::server {

extern const unsigned char kIndexHtml[];
extern const size_t kIndexHtml_size;

using nlohmann::json;

void SendError(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  res.set_content(Dump(error.ToJson()), "application/json");
}

namespace {

ApiError Error(int status, std::string type, std::string message, std::string code = {}) {
  ApiError e;
  e.status = status, e.type = std::move(type), e.message = std::move(message), e.code = std::move(code);
  return e;
}

// Compares in time independent of where the strings differ, so response
// timing does not reveal how much of a guessed key was right.
bool SameSecret(const std::string& given, const std::string& key) {
  if (given.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

}  // namespace

ConnectionLimits LimitsFor(const ServerOptions& o, int64_t max_sequences, int64_t max_queue) {
  ConnectionLimits l;
  l.header_timeout_s = o.header_timeout_s;
  l.body_timeout_s = o.body_timeout_s;
  l.idle_timeout_s = o.idle_timeout_s;
  l.max_connections = o.max_connections;
  l.max_connections_per_ip = o.max_connections_per_ip;
  l.max_body_bytes = o.max_body_bytes;
  l.max_request_memory = o.max_request_memory;
  l.worker_threads = o.http_threads > 0 ? o.http_threads : static_cast<int>(max_sequences + max_queue + 16);
  l.cors_origin = o.cors_origin;
  return l;
}

HttpServer::HttpServer(Scheduler& scheduler, const TextCodec& codec, const ServerOptions& options)
    : scheduler_(scheduler),
      codec_(codec),
      options_(options),
      grammars_(codec, scheduler.model().config().vocab_size),
      large_decodes_(std::clamp<std::ptrdiff_t>(std::thread::hardware_concurrency() / 2, 1, kMaxLargeDecodes)) {
  const SchedulerOptions& so = scheduler_.options();
  transport_ = std::make_unique<Transport>(LimitsFor(options_, so.max_sequences, so.max_queue), metrics_.connections(),
                                           [this](int status, std::string_view line) { LogRefusal(status, line); });
  http_ = std::make_unique<GuardedServer>(*transport_);
  transport_->set_server(http_.get());
  started_ = static_cast<int64_t>(std::time(nullptr));
  Configure();
  Routes();
}

HttpServer::~HttpServer() {
  stopped_ = true;
  if (housekeeping_.joinable()) housekeeping_.join();
  transport_->Stop();
}

void HttpServer::Configure() {
  http_->new_task_queue = [this] { return new InlineTaskQueue(*transport_); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_keep_alive_timeout(options_.idle_timeout_s);
  http_->set_read_timeout(options_.idle_timeout_s, 0);
  http_->set_write_timeout(options_.idle_timeout_s, 0);
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!options_.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", options_.cors_origin);
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      if (req.method == "OPTIONS") {
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (!Authorized(req)) {
      SendError(res, Error(401, "invalid_request_error",
                           "missing or incorrect API key: send it as 'Authorization: Bearer <key>'",
                           "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Anything httplib refuses itself (unknown path, oversized body, bad
  // request line) still gets an OpenAI-style body.
  http_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    // httplib says 400 for any body it could not read; the stream knows why.
    if (res.status == 400 && CurrentReadFailure() == ReadFailure::kTooLarge) res.status = 413;
    if (res.status == 400 && CurrentReadFailure() == ReadFailure::kTimeout) res.status = 408;
    std::string message = "HTTP " + std::to_string(res.status);
    if (res.status == 404) message = "no such endpoint: " + req.method + " " + req.path;
    if (res.status == 413) message = "the request body is too large (see --max-body)";
    if (res.status == 408) message = "the request body did not arrive in time (see --body-timeout, --idle-timeout)";
    if (res.status == 400) message = "malformed HTTP request";
    SendError(res, Error(res.status, res.status == 404 ? "not_found_error" : "invalid_request_error", message));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_->set_logger([this](const httplib::Request& req, const httplib::Response& res) { Log(req, res); });
}

bool HttpServer::Authorized(const httplib::Request& req) const {
  if (options_.api_key.empty()) return true;
  if (req.method == "GET" && req.path == "/") return true;  // the page itself holds no data; it asks for the key
  const std::string h = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  return h.size() > prefix.size() && h.compare(0, prefix.size(), prefix) == 0 &&
         SameSecret(h.substr(prefix.size()), options_.api_key);
}

void HttpServer::Routes() {
  auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    SendError(res, Error(405, "invalid_request_error", "method " + req.method + " is not allowed on " + req.path));
  };
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    const Endpoint ep = std::string(path) == "/v1/completions" ? Endpoint::kCompletions : Endpoint::kChat;
    http_->Post(path, [this, ep](const httplib::Request& req, httplib::Response& res) { HandleGeneration(req, res, ep); });
    http_->Get(path, not_allowed), http_->Put(path, not_allowed), http_->Delete(path, not_allowed);
    http_->Patch(path, not_allowed);
  }
  http_->Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) { HandleResponses(req, res); });
  http_->Get("/v1/responses", not_allowed), http_->Put("/v1/responses", not_allowed);
  http_->Delete("/v1/responses", not_allowed), http_->Patch("/v1/responses", not_allowed);
  // Retrieving, cancelling or deleting a response needs it stored; dsv3
  // stores none, and says so rather than answering "no such endpoint".
  auto not_stored = [](const httplib::Request& req, httplib::Response& res) {
    SendError(res, Error(404, "invalid_request_error",
                         "response '" + std::string(req.matches[1]) +
                             "' is not stored: dsv3 keeps no responses (every response is store: false)",
                         "not_found"));
  };
  http_->Get(R"(/v1/responses/([^/]+)(?:/.*)?)", not_stored);
  http_->Post(R"(/v1/responses/([^/]+)/.+)", not_stored);
  http_->Delete(R"(/v1/responses/([^/]+))", not_stored);
  for (const char* path : {"/", "/health", "/metrics", "/v1/models"})
    http_->Post(path, not_allowed), http_->Put(path, not_allowed), http_->Delete(path, not_allowed);
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) { HandleHealth(res); });
  http_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) { HandleModels(req, res); });
  http_->Get(R"(/v1/models/(.+))",
             [this](const httplib::Request& req, httplib::Response& res) { HandleModels(req, res); });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(scheduler_.Stats(), options_.model_name), "text/plain; version=0.0.4");
  });
  if (options_.web_ui) {
    http_->Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(kIndexHtml), kIndexHtml_size, "text/html; charset=utf-8");
    });
  }
}

void HttpServer::HandleHealth(httplib::Response& res) {
  const SchedulerStats s = scheduler_.Stats();
  json j = {{"status", draining_ ? "shutting_down" : "ok"}, {"running", s.running}, {"waiting", s.waiting}};
  res.status = draining_ ? 503 : 200;
  res.set_content(Dump(j), "application/json");
}

void HttpServer::HandleModels(const httplib::Request& req, httplib::Response& res) {
  json model = {{"id", options_.model_name},
                {"object", "model"},
                {"created", started_},
                {"owned_by", "dsv3"},
                {"max_model_len", scheduler_.options().context},
                {"dsv3", {{"tokenizer", codec_.has_tokenizer()}, {"chat", codec_.has_chat_format()},
                          {"text", codec_.Describe()}}}};
  if (req.matches.size() > 1) {
    if (req.matches[1] != options_.model_name)
      return SendError(res, Error(404, "invalid_request_error",
                                  "the model '" + std::string(req.matches[1]) + "' does not exist", "model_not_found"));
    return res.set_content(Dump(model), "application/json");
  }
  res.set_content(Dump(json{{"object", "list"}, {"data", json::array({model})}}), "application/json");
}

namespace {

// The /metrics endpoint label of a request path: a bounded set, so unknown
// paths do not create new series.
std::string EndpointLabel(const std::string& path) {
  if (path == "/v1/completions" || path == "/v1/chat/completions" || path == "/v1/responses" || path == "/health" ||
      path == "/metrics" || path == "/")
    return path;
  if (path.rfind("/v1/models", 0) == 0) return "/v1/models";
  return "other";
}

}  // namespace

void HttpServer::Log(const httplib::Request& req, const httplib::Response& res) {
  const bool generation =
      req.path == "/v1/completions" || req.path == "/v1/chat/completions" || req.path == "/v1/responses";
  metrics_.CountRequest(EndpointLabel(req.path), res.status);
  // Generation requests are summarised when they finish (with token counts).
  if (options_.log_requests && !(generation && res.status == 200) && req.path != "/metrics" && req.path != "/health")
    std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
}

Status HttpServer::Bind() {
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
  } else {
    port_ = http_->bind_to_port(options_.host, options_.port) ? options_.port : -1;
  }
  if (port_ <= 0)
    return Status::Error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                         " (address in use, or not a local address?)");
  if (!http_->WidenBacklog(std::clamp(options_.max_connections, 128, 4096)))
    return Status::Error("cannot set the listen backlog on " + options_.host + ":" + std::to_string(port_));
  return transport_->Start();
}

void HttpServer::LogRefusal(int status, std::string_view request_line) {
  // The request line is "METHOD PATH VERSION"; its path picks the metrics label.
  const size_t a = request_line.find(' '), b = request_line.rfind(' ');
  const std::string path(a != b && b != std::string_view::npos ? request_line.substr(a + 1, b - a - 1) : "");
  metrics_.CountRequest(EndpointLabel(path), status);
  if (options_.log_requests && !request_line.empty())
    std::fprintf(stderr, "%.*s %d\n", static_cast<int>(request_line.size()), request_line.data(), status);
}

void HttpServer::Serve() {
  housekeeping_ = std::thread([this] { HousekeepingLoop(); });
  http_->listen_after_bind();
  stopped_ = true;
  if (housekeeping_.joinable()) housekeeping_.join();
}

void HttpServer::HousekeepingLoop() {
  // Once a second: the throughput window for /metrics, and memory handed
  // back to the system after a burst (of generations, or of large requests,
  // answered or refused), so an idle server returns to its idle size. Freed
  // glibc heap stays resident until trimmed, in every thread's arena.
  bool trimmed = true;
  int64_t released_at_trim = transport_->request_bytes_released();
  while (!stopped_) {
    for (int i = 0; i < 10 && !stopped_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const SchedulerStats s = scheduler_.Stats();
    metrics_.SampleThroughput(MonotonicSeconds(), s.generated_tokens);
    const bool idle = s.running == 0 && s.waiting == 0 && active_ == 0 && transport_->in_flight() == 0;
    if (!idle) trimmed = false;
    const int64_t released = transport_->request_bytes_released();
    if (released - released_at_trim > (int64_t{1} << 20)) trimmed = false;  // not for every small request
    if (idle && !trimmed) {
      malloc_trim(0);
      trimmed = true;
      released_at_trim = released;
    }
  }
}

void HttpServer::Shutdown() {
  if (shutdown_started_.exchange(true)) return;
  draining_ = true;  // new generation requests get 503 from here on
  const SchedulerStats s = scheduler_.Stats();
  if (options_.log_requests || s.running + s.waiting > 0)
    std::fprintf(stderr, "dsv3 serve: shutting down (%lld running, %lld queued; grace %.0f s)\n",
                 static_cast<long long>(s.running), static_cast<long long>(s.waiting), options_.shutdown_grace_s);
  scheduler_.BeginDrain();
  if (!scheduler_.WaitIdle(options_.shutdown_grace_s)) {
    scheduler_.CancelAll();
    scheduler_.WaitIdle(10);
  }
  // Let the HTTP threads write the last event of every stream before the listener goes.
  for (int i = 0; i < 500 && active_ > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  http_->stop();
}

}  // namespace dsv3::server
