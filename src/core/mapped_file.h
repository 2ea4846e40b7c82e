// Read-only access to input files. Checkpoint weights are memory-mapped and
// used in place from the page cache: loading a model copies nothing and
// costs only the pages actually touched. Only regular files (or symlinks to
// them) are ever read: a FIFO would block the open forever and a device such
// as /dev/zero never ends, so both are refused with an error naming the path,
// and text files are read bounded by their size and a fixed maximum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace dsv3 {

// The largest config / tokenizer / index file read whole (DeepSeek-V3's
// tokenizer.json is 7.8 MB); a bigger one is refused before anything is read.
inline constexpr uint64_t kMaxTextFileBytes = 256ull << 20;
// The largest data text (corpora, prompts, token input) read whole.
inline constexpr uint64_t kMaxDataFileBytes = 16ull << 30;

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

// Opens `path` for reading without blocking (O_NONBLOCK: a FIFO would
// otherwise wait for a writer) and checks it is a regular file; returns the
// descriptor (O_CLOEXEC, blocking again) and its size. Errors name the path:
// "PATH: is not a regular file (a directory)".
struct OpenedFile {
  int fd = -1;
  uint64_t size = 0;
};
Expected<OpenedFile> OpenRegularFile(const std::string& path);

// Drops the whole pages inside [p, p + n) of a read-only file mapping from
// this process (MADV_DONTNEED): streaming converters call it after using a
// tensor so resident memory stays bounded; a later read faults them back in.
void ReleaseMappedPages(const void* p, size_t n);

// Reads a whole regular file of at most `max_bytes`; the error names the
// path. The default bound suits configs and tokenizers; callers reading
// corpora pass kMaxDataFileBytes.
Expected<std::string> ReadTextFile(const std::string& path, uint64_t max_bytes = kMaxTextFileBytes);

}  // namespace dsv3
