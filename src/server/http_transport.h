// How `dsv3 serve` moves bytes: cpp-httplib parses and routes requests, but
// connections are ours. httplib's listener hands each accepted socket to
// GuardedServer::process_and_close_socket (a virtual httplib lets a subclass
// override), which passes it to the connection gate (connection_gate.h)
// instead of tying up a pool thread; once the gate has a complete, acceptable
// request head (and its body, when its length is declared) it dispatches the
// connection to a worker pool, where
// httplib's process_request serves exactly one request through a
// deadline-bound SocketStream. Keep-alive connections go back to the gate
// between requests. Body-less GET/HEAD/OPTIONS requests (/health, /metrics)
// have a small pool of their own, so they are answered even while every
// generation worker is busy. Each request's memory charge is returned when its
// response is done.
#pragma once

#include <httplib.h>
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/status.h"
#include "server/connection.h"
#include "server/connection_gate.h"
#include "server/metrics.h"
#include "server/request_budget.h"

namespace dsv3::server {

class Transport;

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(Transport& transport) : transport_(transport) {}
  // One request on `stream` (httplib's parser, routing and response writer).
  bool ServeOne(httplib::Stream& stream, bool close_connection, bool& connection_closed) {
    return process_request(stream, close_connection, connection_closed, nullptr);
  }
  // httplib listens with a backlog of 5: a burst of connections (a slowloris
  // opening sockets, or many clients at once) overflows it, and every client
  // behind it waits a SYN retransmission (1 s and more). Linux lets a second
  // listen() on the bound socket set a longer queue.
  bool WidenBacklog(int backlog);

 private:
  bool process_and_close_socket(socket_t sock) override;
  Transport& transport_;
};

// Fixed worker threads with an explicit stack size (so start-up can account
// for their address space), serving connections in arrival order.
class WorkerPool {
 public:
  using Work = std::function<void(std::unique_ptr<Connection>)>;
  WorkerPool(int threads, size_t stack_bytes, Work work);
  ~WorkerPool();
  Status Start();
  void Push(std::unique_ptr<Connection> c);
  // Lets the requests being served finish, joins the threads and returns the
  // connections no thread had started on.
  std::vector<std::unique_ptr<Connection>> Stop();

 private:
  static void* Main(void* self);
  void Run();

  const int threads_wanted_;
  const size_t stack_bytes_;
  Work work_;
  std::vector<pthread_t> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Connection>> queue_;
  bool stop_ = false;
};

class Transport {
 public:
  Transport(const ConnectionLimits& limits, ConnectionCounters& counters, ConnectionGate::OnRefusal on_refusal);
  ~Transport();
  void set_server(GuardedServer* server) { server_ = server; }
  Status Start();  // the gate and worker threads; before the listener runs
  void Accept(int fd) { gate_.Accept(fd); }
  // Closes waiting connections, lets requests being served finish, joins.
  void Stop();
  // Requests being served right now, and all request memory ever returned
  // (for the housekeeping loop's decision to trim the heap).
  int in_flight() const { return in_flight_.load(); }
  int64_t request_bytes_released() const { return budget_.released_total(); }

 private:
  void Dispatch(std::unique_ptr<Connection> c);
  void Serve(std::unique_ptr<Connection> c);

  const ConnectionLimits limits_;
  ConnectionCounters& counters_;
  RequestBudget budget_;
  ConnectionGate gate_;
  WorkerPool light_, main_;
  GuardedServer* server_ = nullptr;
  std::atomic<bool> stopping_{false}, stopped_{false};
  std::atomic<int> in_flight_{0}, large_in_flight_{0};
};

// The task queue httplib's listener gets: it runs the per-socket function
// (GuardedServer::process_and_close_socket, which only hands the socket on)
// inline, and its shutdown stops the transport.
class InlineTaskQueue : public httplib::TaskQueue {
 public:
  explicit InlineTaskQueue(Transport& transport) : transport_(transport) {}
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override { transport_.Stop(); }

 private:
  Transport& transport_;
};

}  // namespace dsv3::server
