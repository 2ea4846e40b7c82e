// A file written under PATH.tmp and renamed to PATH only once complete, so an
// interrupted or failed write never leaves a truncated file under the real
// name (the checkpoint writers' crash-safety). The destructor removes the
// temporary file unless Commit() succeeded; after InstallSignalCleanup() a
// SIGINT/SIGTERM/SIGHUP removes it too (and every path registered with
// SignalCleanup) before the process dies of the signal. PATH.tmp is created
// fresh (never through a symlink or into a FIFO or device left there), and
// Commit() never renames over anything but a regular file or a symlink.
#pragma once

#include <signal.h>

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
  // Moves the write position to byte `offset` of the file (later writes go there).
  Status Seek(uint64_t offset);
  // Flushes, closes and renames PATH.tmp to PATH.
  Status Commit();
  const std::string& tmp_path() const { return tmp_path_; }

 private:
  TempFile() = default;
  std::string path_, tmp_path_;
  std::FILE* file_ = nullptr;
  int cleanup_slot_ = -1;
  bool created_ = false;  // PATH.tmp is ours (never remove a name we did not create)
  bool committed_ = false;
};

// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove every
// registered path, then re-raise the signal with its default action (so the
// exit status says which signal ended the process). Commands that write
// outputs (convert, train) call it first; without it signals act as before.
void InstallSignalCleanup();

// Paths removed by the signal handler while registered. A file is unlinked;
// a directory is first renamed aside (so nothing new can be created under
// its name) and then removed recursively. Registration is lock-free and
// bounded (a few dozen paths); when full, Register returns -1 and the path
// is simply not cleaned on a signal.
class SignalCleanup {
 public:
  static int Register(const std::string& path, bool is_directory);
  static void Unregister(int slot);

  // While one exists, this thread does not take the signals and a handler
  // running on another thread waits for it to end: renames that must happen
  // together (moving an old output aside, the new one in, unregistering)
  // are never cut in half. Keep the scope short: the signal waits.
  class Critical {
   public:
    Critical();
    ~Critical();
    Critical(const Critical&) = delete;
    Critical& operator=(const Critical&) = delete;

   private:
    sigset_t old_mask_;
  };
};

}  // namespace dsv3
