// Aligned byte buffers; see aligned_buffer.h.
#include "core/aligned_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace dsv3 {

namespace {
constexpr size_t kHuge = 2u << 20, kPage = 4096;
}

AlignedBytes::AlignedBytes(size_t n) : size_(n) {
  if (n >= kHuge) {
    // Anonymous memory is zero-filled. The start goes on a 2 MiB boundary
    // (mapped 2 MiB longer, the ends given back) so that every whole 2 MiB
    // of the buffer can be a huge page; a page-aligned start left a 2.9 MB
    // matrix one huge page or none.
    const size_t len = (n + kPage - 1) / kPage * kPage;
    void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t r = reinterpret_cast<uintptr_t>(raw), a = (r + kHuge - 1) / kHuge * kHuge;
    if (a > r) munmap(raw, a - r);
    munmap(reinterpret_cast<void*>(a + len), r + kHuge - a);  // a - r < 2 MiB: never empty
    void* p = reinterpret_cast<void*>(a);
    madvise(p, len, MADV_HUGEPAGE);
    base_ = p, mapped_ = len, data_ = static_cast<uint8_t*>(p);
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

uint8_t* HugePageArena::Allocate(size_t n) {
  n = (n + 63) / 64 * 64;
  if (chunks_.empty() || used_ + n > chunks_.back().size()) {
    // A new chunk; what the old one had left is never touched, so never backed.
    chunks_.emplace_back(std::max(kChunkBytes, (n + kHuge - 1) / kHuge * kHuge));
    used_ = 0;
  }
  uint8_t* p = chunks_.back().data() + used_;
  used_ += n;
  return p;
}

AlignedBytes& AlignedBytes::operator=(AlignedBytes&& o) noexcept {
  if (this != &o) {
    Release();
    base_ = o.base_, mapped_ = o.mapped_, data_ = o.data_, size_ = o.size_;
    o.base_ = nullptr, o.mapped_ = 0, o.data_ = nullptr, o.size_ = 0;
  }
  return *this;
}

}  // namespace dsv3
