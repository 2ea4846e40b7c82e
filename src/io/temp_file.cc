// Write-to-temporary-then-rename; see temp_file.h.
#include "io/temp_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace dsv3 {

Expected<std::unique_ptr<TempFile>> TempFile::Create(const std::string& path) {
  std::unique_ptr<TempFile> f(new TempFile());
  f->path_ = path;
  f->tmp_path_ = path + ".tmp";
  f->file_ = std::fopen(f->tmp_path_.c_str(), "wb");
  if (!f->file_) return Status::Error(f->tmp_path_ + ": cannot create: " + std::strerror(errno));
  return f;
}

TempFile::~TempFile() {
  if (file_) std::fclose(file_);
  if (!committed_) {
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }
}

Status TempFile::Write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, file_) != n)
    return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  return Status::Ok();
}

Status TempFile::Commit() {
  if (!file_) return Status::Error(tmp_path_ + ": already closed");
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) return Status::Error(path_ + ": cannot rename from " + tmp_path_ + ": " + ec.message());
  committed_ = true;
  return Status::Ok();
}

}  // namespace dsv3
