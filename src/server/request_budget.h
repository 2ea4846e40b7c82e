// A global bound on the memory held by HTTP requests in flight. Each request
// is charged an estimate (request_head.h RequestCharge: its body times what a
// body grows into once parsed) when its head is complete, before its body is
// read, and the charge is returned when its response is done; a request that
// would pass the bound is answered 503 with Retry-After instead of being read.
// Without it, a few dozen concurrent multi-megabyte bodies (each parsed into a
// JSON tree many times its size) could take gigabytes, rejected or not.
#pragma once

#include <atomic>
#include <cstdint>

namespace dsv3::server {

class RequestBudget {
 public:
  explicit RequestBudget(int64_t capacity) : capacity_(capacity) {}

  // Reserves `bytes` unless that would pass the capacity.
  bool TryReserve(int64_t bytes) {
    int64_t now = reserved_.load(std::memory_order_relaxed);
    do {
      if (now + bytes > capacity_) return false;
    } while (!reserved_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return true;
  }
  void Release(int64_t bytes) {
    reserved_.fetch_sub(bytes, std::memory_order_relaxed);
    released_total_.fetch_add(bytes, std::memory_order_relaxed);
  }
  int64_t reserved() const { return reserved_.load(std::memory_order_relaxed); }
  int64_t capacity() const { return capacity_; }
  // Everything ever released: the housekeeping loop trims the heap once idle
  // after a burst of request memory, not after every small request.
  int64_t released_total() const { return released_total_.load(std::memory_order_relaxed); }

 private:
  const int64_t capacity_;
  std::atomic<int64_t> reserved_{0}, released_total_{0};
};

}  // namespace dsv3::server
