// Read-only memory mapping of a whole file. Checkpoint weights are used in
// place from the page cache: loading a model copies nothing and costs only the
// pages actually touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace dsv3 {

class MappedFile {
 public:
  static Expected<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops the whole pages inside [p, p + n) of a read-only file mapping from
// this process (MADV_DONTNEED): streaming converters call it after using a
// tensor so resident memory stays bounded; a later read faults them back in.
void ReleaseMappedPages(const void* p, size_t n);

// Reads a whole (small) text file; the error names the path.
Expected<std::string> ReadTextFile(const std::string& path);

}  // namespace dsv3
