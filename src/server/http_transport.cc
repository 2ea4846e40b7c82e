// Worker pools and the per-request serving step; see http_transport.h.
#include "server/http_transport.h"

#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "server/socket_stream.h"

namespace dsv3::server {

namespace {
constexpr int64_t kTrimAfterBytes = int64_t{16} << 20;
}  // namespace

bool GuardedServer::WidenBacklog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  transport_.Accept(sock);  // the gate owns it from here; the listener returns to accept() at once
  return true;
}

WorkerPool::WorkerPool(int threads, size_t stack_bytes, Work work)
    : threads_wanted_(threads), stack_bytes_(stack_bytes), work_(std::move(work)) {}

WorkerPool::~WorkerPool() {
  for (auto& c : Stop()) ::close(c->fd);
}

Status WorkerPool::Start() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes_);
  Status st = Status::Ok();
  for (int i = 0; i < threads_wanted_; ++i) {
    pthread_t t;
    const int err = pthread_create(&t, &attr, &WorkerPool::Main, this);
    if (err != 0) {
      st = Status::Error("cannot start HTTP worker thread " + std::to_string(i + 1) + " of " +
                         std::to_string(threads_wanted_) + " (" + std::to_string(stack_bytes_ >> 20) +
                         " MiB stack each): " + std::strerror(err));
      break;
    }
    threads_.push_back(t);
  }
  pthread_attr_destroy(&attr);
  return st;
}

void* WorkerPool::Main(void* self) {
  static_cast<WorkerPool*>(self)->Run();
  return nullptr;
}

void WorkerPool::Run() {
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      c = std::move(queue_.front());
      queue_.pop_front();
    }
    work_(std::move(c));
  }
}

void WorkerPool::Push(std::unique_ptr<Connection> c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(c));
  }
  cv_.notify_one();
}

std::vector<std::unique_ptr<Connection>> WorkerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (pthread_t t : threads_) pthread_join(t, nullptr);
  threads_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::unique_ptr<Connection>> left;
  for (auto& c : queue_) left.push_back(std::move(c));
  queue_.clear();
  return left;
}

Transport::Transport(const ConnectionLimits& limits, ConnectionCounters& counters,
                     ConnectionGate::OnRefusal on_refusal)
    : limits_(limits),
      counters_(counters),
      budget_(limits.max_request_memory),
      gate_(limits_, budget_, counters, [this](std::unique_ptr<Connection> c) { Dispatch(std::move(c)); },
            std::move(on_refusal)),
      light_(limits.light_threads, limits.worker_stack_bytes, [this](std::unique_ptr<Connection> c) { Serve(std::move(c)); }),
      main_(limits.worker_threads, limits.worker_stack_bytes, [this](std::unique_ptr<Connection> c) { Serve(std::move(c)); }) {
  counters_.request_memory_limit = limits.max_request_memory;
}

Transport::~Transport() { Stop(); }

Status Transport::Start() {
  DSV3_RETURN_IF_ERROR(light_.Start());
  DSV3_RETURN_IF_ERROR(main_.Start());
  return gate_.Start();
}

void Transport::Dispatch(std::unique_ptr<Connection> c) {
  if (c->head.light()) return light_.Push(std::move(c));
  main_.Push(std::move(c));
}

void Transport::Serve(std::unique_ptr<Connection> c) {
  ++in_flight_;
  const bool large = c->charge >= kTrimAfterBytes;
  if (large) ++large_in_flight_;
  SocketStream stream(*c, limits_, stopping_);
  const bool last = stopping_ || c->requests + 1 >= limits_.max_keep_alive_requests;
  bool closed = false, ok = false;
  try {
    ok = server_->ServeOne(stream, last, closed);
  } catch (...) {  // httplib catches handler exceptions; anything else (bad_alloc reading a body) ends the connection
    ok = false;
  }
  const bool reusable = stream.Finish();
  budget_.Release(c->charge);
  // A large request's freed heap stays resident in this thread's arena until
  // trimmed; trim when the last large request in flight is done rather than
  // at the next idle moment, so a series of them served by different threads
  // does not pile up. Not after each one of a burst: malloc_trim holds each
  // arena's lock while it walks it, stalling every other thread's malloc
  // (/health answered in 1.6 s instead of 30 ms under 30 concurrent ones).
  if (large && --large_in_flight_ == 0) malloc_trim(0);
  c->charge = 0;
  counters_.request_memory = budget_.reserved();
  ++c->requests;
  --in_flight_;
  if (ok && reusable && !closed && !last) return gate_.Return(std::move(c));
  gate_.Release(std::move(c), !stream.peer_gone());
}

void Transport::Stop() {
  if (stopped_.exchange(true)) return;
  stopping_ = true;
  gate_.Stop();
  for (WorkerPool* pool : {&light_, &main_})
    for (auto& c : pool->Stop()) ::close(c->fd);
}

}  // namespace dsv3::server
