// A fixed-size, zero-initialised array whose first element sits on a 64-byte
// cache line. SIMD kernels stream rows from such buffers; a vector load that
// straddles two cache lines costs two, which halves a memory-bound kernel's
// speed (measured on the FP8 matrix-vector product). Buffers of 2 MiB or more
// come straight from mmap, start on a 2 MiB boundary and have transparent huge
// pages requested: streaming over 2 MiB pages keeps the hardware prefetcher
// running, where 4 KiB pages stop it at every page (about +30% for the decode
// kernel, one thread). HugePageArena packs many buffers into such pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsv3 {

class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t n);
  ~AlignedBytes();
  AlignedBytes(AlignedBytes&& o) noexcept { *this = static_cast<AlignedBytes&&>(o); }
  AlignedBytes& operator=(AlignedBytes&& o) noexcept;
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void Release();
  void* base_ = nullptr;  // what to free: an mmap region or a new[] block
  size_t mapped_ = 0;     // > 0: base_ is an mmap region of this many bytes
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Many buffers, each on a cache line, carved from 64 MiB chunks that are
// 2 MiB pages from end to end: an AlignedBytes per matrix leaves the part of
// it past its last 2 MiB boundary on 4 KiB pages (with the weights copied
// one matrix each, bench-moe held 1.2 of 3.3 GB on huge pages). Lives as
// long as the buffers.
class HugePageArena {
 public:
  static constexpr size_t kChunkBytes = size_t{64} << 20;
  // n zeroed bytes, 64-byte aligned; larger than a chunk: a chunk of its own.
  uint8_t* Allocate(size_t n);

 private:
  std::vector<AlignedBytes> chunks_;
  size_t used_ = 0;  // bytes handed out from chunks_.back()
};

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) : bytes_(n * sizeof(T)), size_(n) {}
  T* data() { return reinterpret_cast<T*>(bytes_.data()); }
  const T* data() const { return reinterpret_cast<const T*>(bytes_.data()); }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }

 private:
  AlignedBytes bytes_;
  size_t size_ = 0;
};

}  // namespace dsv3
