// The httplib::Stream a worker thread serves one request through. It first
// hands httplib the bytes the connection gate already read (the head, and a
// body of declared length in full), then reads the socket only for a chunked
// body, which declares no size: under a deadline for the whole body
// (--body-timeout), not one per read, so a client trickling it cannot hold a
// worker indefinitely, and capped at --max-body. A read or write that makes no
// progress for --idle-timeout fails. It never reads past what httplib asks
// for, so a pipelined request stays in the socket or in `pending`.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "server/connection.h"

namespace dsv3::server {

enum class ReadFailure { kNone, kTimeout, kTooLarge };

class SocketStream final : public httplib::Stream {
 public:
  SocketStream(Connection& c, const ConnectionLimits& limits, const std::atomic<bool>& stopping);
  ~SocketStream() override;

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return c_.fd; }

  // After the request: drops what httplib consumed from the connection's
  // pending bytes. True when the connection may carry another request (no
  // failed read, and the body was read to its end).
  bool Finish();
  bool peer_gone() const { return peer_gone_; }

 private:
  ssize_t ReadSocket(char* ptr, size_t size);
  bool WaitFor(short events, double until) const;

  Connection& c_;
  const ConnectionLimits& limits_;
  const std::atomic<bool>& stopping_;
  size_t offset_ = 0;       // bytes of c_.pending handed to httplib
  int64_t body_read_ = 0;   // body bytes handed to httplib
  int64_t body_cap_ = 0;    // the most body bytes httplib may read
  double body_deadline_ = 0;
  bool failed_ = false, peer_gone_ = false;
};

// Why the current thread's request body could not be read (kNone if it
// could): lets the error handler answer 408 or 413 where httplib says 400.
ReadFailure CurrentReadFailure();

}  // namespace dsv3::server
