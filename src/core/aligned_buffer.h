// A fixed-size, zero-initialised array whose first element sits on a 64-byte
// cache line. SIMD kernels stream rows from such buffers; a vector load that
// straddles two cache lines costs two, which halves a memory-bound kernel's
// speed (measured on the FP8 matrix-vector product).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace dsv3 {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) : raw_(new uint8_t[n * sizeof(T) + 64]()), size_(n) {
    data_ = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(raw_.get()) + 63) & ~uintptr_t{63});
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  std::unique_ptr<uint8_t[]> raw_;
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dsv3
