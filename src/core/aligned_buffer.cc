// Aligned byte buffers; see aligned_buffer.h.
#include "core/aligned_buffer.h"

#include <sys/mman.h>

#include <cstring>
#include <new>

namespace dsv3 {

namespace {
constexpr size_t kHuge = 2u << 20;
}

AlignedBytes::AlignedBytes(size_t n) : size_(n) {
  if (n >= kHuge) {
    // Anonymous memory is zero-filled and page (thus cache-line) aligned.
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, n, MADV_HUGEPAGE);
    base_ = p, mapped_ = n, data_ = static_cast<uint8_t*>(p);
    return;
  }
  uint8_t* raw = new uint8_t[n + 64]();
  base_ = raw;
  data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + 63) & ~uintptr_t{63});
}

void AlignedBytes::Release() {
  if (mapped_) munmap(base_, mapped_);
  else delete[] static_cast<uint8_t*>(base_);
  base_ = nullptr, mapped_ = 0, data_ = nullptr, size_ = 0;
}

AlignedBytes::~AlignedBytes() { Release(); }

AlignedBytes& AlignedBytes::operator=(AlignedBytes&& o) noexcept {
  if (this != &o) {
    Release();
    base_ = o.base_, mapped_ = o.mapped_, data_ = o.data_, size_ = o.size_;
    o.base_ = nullptr, o.mapped_ = 0, o.data_ = nullptr, o.size_ = 0;
  }
  return *this;
}

}  // namespace dsv3
