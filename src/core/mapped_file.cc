// POSIX mmap wrapper and bounded regular-file reads; see mapped_file.h.
#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dsv3 {

namespace {

// What a non-regular file is, for the error message.
const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

}  // namespace

Expected<OpenedFile> OpenRegularFile(const std::string& path) {
  // O_NONBLOCK only matters for FIFOs (open would wait for a writer); the
  // check below refuses them, and regular files ignore the flag.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Error(path + ": is not a regular file (" + KindOf(st.st_mode) + ")");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return OpenedFile{fd, static_cast<uint64_t>(st.st_size)};
}

Expected<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(OpenedFile f, OpenRegularFile(path));
  std::unique_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(f.size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(f.fd);
      return Status::Error(path + ": mmap failed: " + std::strerror(err));
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(f.fd);
  return file;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void ReleaseMappedPages(const void* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Expected<std::string> ReadTextFile(const std::string& path, uint64_t max_bytes) {
  DSV3_ASSIGN_OR_RETURN(OpenedFile f, OpenRegularFile(path));
  if (f.size > max_bytes) {
    ::close(f.fd);
    return Status::Error(path + ": " + std::to_string(f.size) + " bytes is more than the " +
                         std::to_string(max_bytes >> 20) + " MiB this file may have");
  }
  std::string text(static_cast<size_t>(f.size), '\0');
  size_t got = 0;
  // Reads at most the size stat reported: a file that grows meanwhile is
  // read as it was, one that shrinks ends the read early.
  while (got < text.size()) {
    const ssize_t n = ::read(f.fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(f.fd);
      return Status::Error(path + ": read error: " + std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(f.fd);
  text.resize(got);
  return text;
}

}  // namespace dsv3
