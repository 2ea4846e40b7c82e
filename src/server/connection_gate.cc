// The connection gate's poll loop, admission and refusals; see
// connection_gate.h. Everything but the inbox belongs to the gate thread, so
// connection counts need no lock: workers hand connections back through the
// inbox and the gate closes them itself.
#include "server/connection_gate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <system_error>

#include "server/api.h"
#include "server/responses.h"

namespace dsv3::server {

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

const char* Reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// The peer's address; IPv4-mapped IPv6 addresses count as their IPv4 client.
std::string PeerAddress(int fd, int* port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  char buf[INET6_ADDRSTRLEN] = {};
  *port = 0;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)), *port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)), *port = ntohs(a->sin6_port);
  }
  std::string ip = buf;
  if (ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos) ip = ip.substr(7);
  return ip;
}

void SendBestEffort(int fd, const std::string& data) { (void)::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT); }

}  // namespace

std::string RefusalResponse(int status, const std::string& message, const std::string& code, int retry_after_s,
                            const std::string& cors_origin) {
  ApiError e;
  e.status = status, e.message = message, e.code = code;
  e.type = status >= 500 ? "server_error" : "invalid_request_error";
  const std::string body = Dump(e.ToJson());
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n";
  if (retry_after_s > 0) out += "Retry-After: " + std::to_string(retry_after_s) + "\r\n";
  if (!cors_origin.empty()) out += "Access-Control-Allow-Origin: " + cors_origin + "\r\n";
  return out + "\r\n" + body;
}

ConnectionGate::ConnectionGate(const ConnectionLimits& limits, RequestBudget& budget, ConnectionCounters& counters,
                               Dispatch dispatch, OnRefusal on_refusal)
    : limits_(limits), budget_(budget), counters_(counters), dispatch_(std::move(dispatch)),
      on_refusal_(std::move(on_refusal)) {}

ConnectionGate::~ConnectionGate() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status ConnectionGate::Start() {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::Error(std::string("eventfd: ") + std::strerror(errno));
  try {
    thread_ = std::thread([this] { Loop(); });
  } catch (const std::system_error& e) {
    return Status::Error(std::string("cannot start the connection gate thread: ") + e.what());
  }
  return Status::Ok();
}

void ConnectionGate::Accept(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) {
    ::close(fd);
    return;
  }
  inbox_.push_back(Event{Event::kAccept, fd, nullptr});
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
}

void ConnectionGate::Return(std::unique_ptr<Connection> c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) {
    ::close(c->fd);
    return;
  }
  inbox_.push_back(Event{Event::kReturn, -1, std::move(c)});
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
}

void ConnectionGate::Release(std::unique_ptr<Connection> c, bool linger) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) {
    ::close(c->fd);
    return;
  }
  inbox_.push_back(Event{linger ? Event::kLinger : Event::kClose, -1, std::move(c)});
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
}

void ConnectionGate::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    if (wake_fd_ >= 0) {
      const uint64_t one = 1;
      (void)::write(wake_fd_, &one, sizeof(one));
    }
  }
  if (thread_.joinable()) thread_.join();
}

void ConnectionGate::Loop() {
  std::vector<Event> events;
  std::vector<pollfd> fds;
  for (;;) {
    bool stop = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      events.swap(inbox_);
      stop = stopped_;
    }
    double now = Now();
    for (Event& e : events) {
      if (stop && e.kind == Event::kAccept) ::close(e.fd);
      else if (stop) Close(e.conn);
      else Handle(e, now);
    }
    events.clear();
    if (stop) break;
    Expire(now);
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), nullptr), waiting_.end());
    double next = now + 1.0;
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    for (const auto& c : waiting_) {
      fds.push_back(pollfd{c->fd, POLLIN, 0});
      next = std::min(next, c->deadline);
    }
    const int ms = static_cast<int>(std::ceil(std::max(0.0, next - now) * 1000));
    if (::poll(fds.data(), fds.size(), ms) < 0 && errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (fds[0].revents & POLLIN) {
      uint64_t n;
      (void)::read(wake_fd_, &n, sizeof(n));
    }
    now = Now();
    for (size_t i = 0; i < waiting_.size(); ++i)
      if (waiting_[i] && (fds[i + 1].revents & (POLLIN | POLLERR | POLLHUP))) OnReadable(i, now);
  }
  for (auto& c : waiting_)
    if (c) Close(c);
  waiting_.clear();
}

void ConnectionGate::Handle(Event& e, double now) {
  switch (e.kind) {
    case Event::kAccept: return Admit(e.fd, now);
    case Event::kClose: return Close(e.conn);
    case Event::kLinger:
      StartLinger(*e.conn, now);
      waiting_.push_back(std::move(e.conn));
      return;
    case Event::kReturn:
      e.conn->phase = Connection::Phase::kKeepAlive;
      e.conn->deadline = now + limits_.idle_timeout_s;
      e.conn->since = now;
      waiting_.push_back(std::move(e.conn));
      if (!waiting_.back()->pending.empty()) CheckHead(waiting_.size() - 1, now);  // a pipelined request
      return;
  }
}

void ConnectionGate::Admit(int fd, double now) {
  auto c = std::make_unique<Connection>();
  c->fd = fd;
  c->ip = PeerAddress(fd, &c->port);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (!MakeRoom(c->ip, now)) {
    ++counters_.refused;
    SendBestEffort(fd, RefusalResponse(503, "too many open connections; retry later", "too_many_connections", 1,
                                       limits_.cors_origin));
    ::close(fd);
    on_refusal_(503, "");
    return;
  }
  c->phase = Connection::Phase::kHead;
  c->deadline = now + limits_.header_timeout_s;
  c->since = now;
  ++open_, ++open_per_ip_[c->ip];
  counters_.open = open_;
  waiting_.push_back(std::move(c));
}

bool ConnectionGate::MakeRoom(const std::string& ip, double now) {
  (void)now;
  // The best connection to evict among those `eligible`: lingering ones
  // first (already answered), then the longest waiting for a head.
  auto pick = [this](auto eligible) {
    long best = -1;
    for (size_t i = 0; i < waiting_.size(); ++i) {
      const Connection* c = waiting_[i].get();
      if (!c || !eligible(*c)) continue;
      if (best < 0) {
        best = static_cast<long>(i);
        continue;
      }
      const Connection& b = *waiting_[best];
      const bool c_linger = c->phase == Connection::Phase::kLinger, b_linger = b.phase == Connection::Phase::kLinger;
      if (c_linger != b_linger ? c_linger : c->since < b.since) best = static_cast<long>(i);
    }
    return best;
  };
  auto evict = [this](long i) {
    ++counters_.evicted;
    Close(waiting_[i]);
  };
  if (open_per_ip_[ip] >= limits_.max_connections_per_ip) {
    const long i = pick([&](const Connection& c) { return c.ip == ip; });
    if (i < 0) return false;
    evict(i);
  }
  if (open_ >= limits_.max_connections) {
    int busiest = 0;  // the IP holding the most connections that has one waiting
    for (const auto& c : waiting_)
      if (c) busiest = std::max(busiest, open_per_ip_[c->ip]);
    const long i = pick([&](const Connection& c) { return open_per_ip_[c.ip] == busiest; });
    if (i < 0) return false;
    evict(i);
  }
  return true;
}

void ConnectionGate::OnReadable(size_t i, double now) {
  Connection& c = *waiting_[i];
  if (c.phase == Connection::Phase::kLinger) return Drain(i);
  if (c.phase == Connection::Phase::kBody) return ReadBody(i);
  char buf[16384];
  bool eof = false;
  while (c.pending.size() <= limits_.max_head_bytes) {
    const size_t room = std::min(sizeof(buf), limits_.max_head_bytes + 1 - c.pending.size());
    const ssize_t n = ::recv(c.fd, buf, room, MSG_DONTWAIT);
    if (n > 0) {
      c.pending.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    eof = true;  // closed (a half-closed client may still have sent a whole request) or reset
    break;
  }
  CheckHead(i, now);
  if (eof && waiting_[i] && waiting_[i]->phase != Connection::Phase::kLinger) Close(waiting_[i]);
}

void ConnectionGate::Drain(size_t i) {
  Connection& c = *waiting_[i];
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      c.discarded += n;
      if (c.discarded > static_cast<int64_t>(limits_.max_body_bytes + limits_.max_head_bytes)) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    break;
  }
  Close(waiting_[i]);
}

void ConnectionGate::ReadBody(size_t i) {
  Connection& c = *waiting_[i];
  const size_t total = c.head_bytes + static_cast<size_t>(c.head.content_length);
  char buf[65536];
  // At most a slice per wake-up: a fast upload must not keep the gate from
  // the other connections (a /health head waiting behind 30 MB of bodies).
  constexpr size_t kSlice = 256 << 10;
  const size_t stop = std::min(total, c.pending.size() + kSlice);
  while (c.pending.size() < stop) {
    const ssize_t n = ::recv(c.fd, buf, std::min(sizeof(buf), stop - c.pending.size()), MSG_DONTWAIT);
    if (n > 0) {
      c.pending.append(buf, static_cast<size_t>(n));
      // Total deadline from the end of the head; a stall also ends it.
      c.deadline = std::min(c.since + limits_.body_timeout_s, Now() + limits_.idle_timeout_s);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    return Close(waiting_[i]);  // gone before its body was complete
  }
  if (c.pending.size() == total) HandOver(i);
}

void ConnectionGate::HandOver(size_t i) { dispatch_(std::move(waiting_[i])); }

void ConnectionGate::CheckHead(size_t i, double now) {
  Connection& c = *waiting_[i];
  const size_t end = FindHeadEnd(c.pending, c.scanned);
  if (end == std::string_view::npos || end > limits_.max_head_bytes) {
    c.scanned = c.pending.size();
    if (c.pending.size() > limits_.max_head_bytes) {
      Refuse(c, 431, "the request line and headers exceed " + std::to_string(limits_.max_head_bytes) + " bytes", now);
    } else if (!PlausibleHeadStart(c.pending)) {
      Refuse(c, 400, "malformed HTTP request", now);
    } else if (c.phase == Connection::Phase::kKeepAlive && !c.pending.empty()) {
      c.phase = Connection::Phase::kHead;  // the next request has begun: its head gets the head deadline
      c.deadline = now + limits_.header_timeout_s;
    }
    return;
  }
  HeadCheck check = CheckRequestHead(std::string_view(c.pending).substr(0, end), limits_.max_body_bytes);
  if (check.status) return Refuse(c, check.status, check.message, now);
  c.head = std::move(check.head);
  c.head_bytes = end;
  const int64_t charge = RequestCharge(c.head, end, limits_.max_body_bytes, limits_.body_memory_factor);
  if (!budget_.TryReserve(charge)) {
    ++counters_.busy;
    return Refuse(c, 503, "the server is holding too much request data (--max-request-memory); retry later", now);
  }
  counters_.request_memory = budget_.reserved();
  c.charge = charge;
  const size_t total = end + static_cast<size_t>(std::max<int64_t>(c.head.content_length, 0));
  // A body of known length is read here, so a slow one holds no worker; one
  // that waits for "100 Continue" is read by the worker after httplib sends it.
  if (c.pending.size() < total && !c.head.expect_continue) {
    c.phase = Connection::Phase::kBody;
    c.since = now;
    c.deadline = std::min(now + limits_.body_timeout_s, now + limits_.idle_timeout_s);
    c.pending.reserve(total);
    return ReadBody(i);
  }
  HandOver(i);
}

void ConnectionGate::Refuse(Connection& c, int status, const std::string& message, double now) {
  const size_t eol = c.pending.find("\r\n");
  const std::string line = c.pending.substr(0, std::min<size_t>(eol == std::string::npos ? 0 : eol, 200));
  const std::string code = status == 503 ? "server_busy" : "";
  SendBestEffort(c.fd, RefusalResponse(status, message, code, status == 503 ? 1 : 0, limits_.cors_origin));
  on_refusal_(status, line);
  StartLinger(c, now);
}

void ConnectionGate::StartLinger(Connection& c, double now) {
  ::shutdown(c.fd, SHUT_WR);  // the answer is complete; the client sees EOF after it
  if (c.charge) {  // no longer a request in flight
    budget_.Release(c.charge);
    counters_.request_memory = budget_.reserved();
    c.charge = 0;
  }
  c.phase = Connection::Phase::kLinger;
  c.deadline = now + limits_.linger_s;
  c.since = now;
  std::string().swap(c.pending);
  c.scanned = 0;
}

void ConnectionGate::Expire(double now) {
  for (auto& c : waiting_) {
    if (!c || c->deadline > now) continue;
    if (c->phase == Connection::Phase::kBody) {
      ++counters_.body_timeouts;
      Refuse(*c, 408, "the request body did not arrive within --body-timeout (" +
                          std::to_string(static_cast<int>(limits_.body_timeout_s)) + " s), or stalled for " +
                          "--idle-timeout (" + std::to_string(static_cast<int>(limits_.idle_timeout_s)) + " s)",
             now);
      continue;
    }
    if (c->phase == Connection::Phase::kHead) ++counters_.head_timeouts;
    Close(c);
  }
}

void ConnectionGate::Close(std::unique_ptr<Connection>& c) {
  ::close(c->fd);
  if (c->charge) {
    budget_.Release(c->charge);
    counters_.request_memory = budget_.reserved();
  }
  --open_;
  auto it = open_per_ip_.find(c->ip);
  if (it != open_per_ip_.end() && --it->second <= 0) open_per_ip_.erase(it);
  counters_.open = open_;
  c.reset();
}

}  // namespace dsv3::server
