// A file written under PATH.tmp and renamed to PATH only once complete, so an
// interrupted or failed write never leaves a truncated file under the real
// name (the checkpoint writers' crash-safety). The destructor removes the
// temporary file unless Commit() succeeded.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "core/status.h"

namespace dsv3 {

class TempFile {
 public:
  static Expected<std::unique_ptr<TempFile>> Create(const std::string& path);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  Status Write(const void* data, size_t n);
  // Flushes, closes and renames PATH.tmp to PATH.
  Status Commit();
  const std::string& tmp_path() const { return tmp_path_; }

 private:
  TempFile() = default;
  std::string path_, tmp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace dsv3
