// Deadline-bound socket I/O for one request; see socket_stream.h. The socket
// is non-blocking: every wait is a poll() with the time left, in slices short
// enough to notice a server shutdown.
#include "server/socket_stream.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>

namespace dsv3::server {

namespace {

thread_local ReadFailure current_failure = ReadFailure::kNone;

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

bool Transient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

ReadFailure CurrentReadFailure() { return current_failure; }

SocketStream::SocketStream(Connection& c, const ConnectionLimits& limits, const std::atomic<bool>& stopping)
    : c_(c), limits_(limits), stopping_(stopping) {
  current_failure = ReadFailure::kNone;
  body_deadline_ = Now() + limits.body_timeout_s;
  if (c.head.chunked) {
    body_cap_ = static_cast<int64_t>(limits.max_body_bytes) + 1024;  // + the chunk-size lines of a small body
  } else {
    body_cap_ = std::max<int64_t>(c.head.content_length, 0);
  }
}

SocketStream::~SocketStream() { current_failure = ReadFailure::kNone; }

bool SocketStream::WaitFor(short events, double until) const {
  const double left = until - Now();
  if (left <= 0) return false;
  pollfd p{c_.fd, events, 0};
  const int ms = static_cast<int>(std::ceil(std::min(left, 0.25) * 1000));
  const int r = ::poll(&p, 1, ms);
  return r > 0 && (p.revents & (events | POLLERR | POLLHUP)) != 0;
}

bool SocketStream::is_readable() const {
  if (offset_ < c_.pending.size()) return true;
  const double until = Now() + limits_.idle_timeout_s;
  while (Now() < until && !stopping_)
    if (WaitFor(POLLIN, until)) return true;
  return false;
}

bool SocketStream::is_writable() const {
  const double until = Now() + limits_.idle_timeout_s;
  bool writable = false;
  while (!writable && Now() < until) writable = WaitFor(POLLOUT, until);
  if (!writable) return false;
  // Alive unless the client closed or reset its side (pipelined bytes are fine).
  pollfd p{c_.fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return true;
  if (p.revents & (POLLERR | POLLHUP)) return false;
  char byte;
  const ssize_t n = ::recv(c_.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && Transient(errno));
}

ssize_t SocketStream::read(char* ptr, size_t size) {
  if (size == 0) return 0;
  if (offset_ < c_.pending.size()) {
    size_t n = std::min(size, c_.pending.size() - offset_);
    const size_t head_left = offset_ < c_.head_bytes ? c_.head_bytes - offset_ : 0;
    if (n > head_left) {  // the part past the head is body
      const int64_t room = std::max<int64_t>(body_cap_ - body_read_, 0);
      n = head_left + static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(n - head_left), room));
      if (n == 0) {
        failed_ = true, current_failure = ReadFailure::kTooLarge;
        return -1;
      }
      body_read_ += static_cast<int64_t>(n - head_left);
    }
    std::copy_n(c_.pending.data() + offset_, n, ptr);
    offset_ += n;
    if (offset_ == c_.pending.size()) {  // all handed over (httplib holds its own copy of the body): free it now
      std::string().swap(c_.pending);
      offset_ = 0, c_.head_bytes = 0;
    }
    return static_cast<ssize_t>(n);
  }
  return ReadSocket(ptr, size);
}

ssize_t SocketStream::ReadSocket(char* ptr, size_t size) {
  auto fail = [this](ReadFailure why) {
    failed_ = true, current_failure = why;
    return ssize_t{-1};
  };
  const int64_t room = body_cap_ - body_read_;
  if (room <= 0) return fail(ReadFailure::kTooLarge);
  size = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(size), room));
  const double until = std::min(body_deadline_, Now() + limits_.idle_timeout_s);
  for (;;) {
    const ssize_t n = ::recv(c_.fd, ptr, size, MSG_DONTWAIT);
    if (n > 0) {
      body_read_ += n;
      return n;
    }
    if (n == 0 || !Transient(errno)) {
      failed_ = peer_gone_ = true;
      return n;
    }
    if (stopping_) return fail(ReadFailure::kNone);
    if (Now() >= until) return fail(ReadFailure::kTimeout);
    WaitFor(POLLIN, until);
  }
}

ssize_t SocketStream::write(const char* ptr, size_t size) {
  const double until = Now() + limits_.idle_timeout_s;
  for (;;) {
    const ssize_t n = ::send(c_.fd, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (!Transient(errno)) {
      failed_ = peer_gone_ = true;
      return -1;
    }
    if (Now() >= until) {  // the client stopped reading
      failed_ = true;
      return -1;
    }
    WaitFor(POLLOUT, until);
  }
}

void SocketStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = c_.ip;
  port = c_.port;
}

void SocketStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ip.clear(), port = 0;
  if (::getsockname(c_.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)), port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)), port = ntohs(a->sin6_port);
  }
  ip = buf;
}

bool SocketStream::Finish() {
  c_.pending.erase(0, offset_);
  if (c_.pending.empty()) std::string().swap(c_.pending);  // a keep-alive connection holds no buffer
  offset_ = 0, c_.scanned = 0, c_.head_bytes = 0;
  current_failure = ReadFailure::kNone;
  const bool body_done = !c_.head.chunked && body_read_ == std::max<int64_t>(c_.head.content_length, 0);
  return !failed_ && body_done;
}

}  // namespace dsv3::server
