// The connection gate: one poll() thread that owns every client connection
// not currently being served, so that slow or idle clients cost a file
// descriptor and some bytes, never a worker thread. It reads each new (or
// kept-alive) connection until its request head is complete and checks it
// (request_head.h), reserves its memory charge (request_budget.h), reads a
// body of declared length to its end (the charge already covers it), and only
// then hands it to a worker. It closes heads that miss --header-timeout
// (slowloris: a header line every few seconds is progress, but the deadline is
// total), answers 408 to bodies that miss --body-timeout, closes idle
// keep-alive connections after --idle-timeout, and, when a client
// IP or the whole server is at its connection cap, the oldest connection of
// that IP (or of the busiest IP) still waiting for its head; with nothing to
// evict the new connection gets 503. Refusals are answered with an
// OpenAI-style JSON error, then the rest of the request is read and discarded
// for a moment (a lingering close), so the client sees the answer rather than
// a reset.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "server/connection.h"
#include "server/metrics.h"
#include "server/request_budget.h"

namespace dsv3::server {

class ConnectionGate {
 public:
  using Dispatch = std::function<void(std::unique_ptr<Connection>)>;
  // Called on the gate thread for each request it refuses itself: the status
  // and the request line (empty when there was none).
  using OnRefusal = std::function<void(int status, std::string_view request_line)>;

  ConnectionGate(const ConnectionLimits& limits, RequestBudget& budget, ConnectionCounters& counters,
                 Dispatch dispatch, OnRefusal on_refusal);
  ~ConnectionGate();

  Status Start();
  // Any thread. Takes ownership of an accepted socket.
  void Accept(int fd);
  // A worker finished a request and the connection may carry another.
  void Return(std::unique_ptr<Connection> c);
  // A worker is done with the connection: close it, after a lingering close
  // (read and discard the rest for --linger seconds) when asked.
  void Release(std::unique_ptr<Connection> c, bool linger);
  // Closes every connection the gate holds; later hand-backs are closed at once.
  void Stop();

 private:
  struct Event {
    enum Kind { kAccept, kReturn, kClose, kLinger } kind;
    int fd = -1;
    std::unique_ptr<Connection> conn;
  };

  void Loop();
  void Handle(Event& e, double now);
  void Admit(int fd, double now);
  bool MakeRoom(const std::string& ip, double now);
  void OnReadable(size_t i, double now);
  void Drain(size_t i);
  void ReadBody(size_t i);
  void CheckHead(size_t i, double now);
  void HandOver(size_t i);  // to a worker
  void Refuse(Connection& c, int status, const std::string& message, double now);
  void StartLinger(Connection& c, double now);
  void Expire(double now);
  void Close(std::unique_ptr<Connection>& c);  // closes the socket, updates counts, leaves c null

  const ConnectionLimits limits_;
  RequestBudget& budget_;
  ConnectionCounters& counters_;
  Dispatch dispatch_;
  OnRefusal on_refusal_;

  // Gate thread only. Null entries were dispatched or closed and are
  // compacted before the next poll.
  std::vector<std::unique_ptr<Connection>> waiting_;
  std::unordered_map<std::string, int> open_per_ip_;  // waiting + being served
  int open_ = 0;

  std::mutex mu_;
  std::vector<Event> inbox_;
  bool stopped_ = false;
  int wake_fd_ = -1;
  std::thread thread_;
};

// The complete HTTP response for a refusal the server answers without
// httplib: status line, JSON error body, `Connection: close`, and
// `Retry-After` when retry_after_s > 0.
std::string RefusalResponse(int status, const std::string& message, const std::string& code, int retry_after_s,
                            const std::string& cors_origin);

}  // namespace dsv3::server
