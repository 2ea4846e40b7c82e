// Write-to-temporary-then-rename, and removal of partial outputs on a fatal
// signal; see temp_file.h. The signal handler only uses async-signal-safe
// system calls (rename, unlink, openat, getdents64, unlinkat, close) on
// paths copied into fixed slots ahead of time: it may interrupt malloc.
#include "io/temp_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace dsv3 {

namespace {

constexpr int kSlots = 64;
constexpr size_t kMaxPath = 4096;
constexpr int kMaxDepth = 16;  // directories deeper than this are left (never written by dsv3)
constexpr char kAsideSuffix[] = ".dsv3-removing";

struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 armed, 3 claimed by the handler
  bool directory = false;
  char path[kMaxPath] = {};
  char aside[kMaxPath + sizeof(kAsideSuffix)] = {};
};

Slot g_slots[kSlots];
std::atomic<bool> g_cleaning{false};
std::atomic<int> g_critical{0};  // live SignalCleanup::Critical scopes

sigset_t CleanupSignals() {
  sigset_t set;
  ::sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaddset(&set, sig);
  return set;
}

struct Dirent64 {  // the kernel's linux_dirent64
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

// Removes everything inside the open directory `dir`. Rescans until a pass
// finds nothing: deleting while reading may skip entries, and a thread still
// running may have been creating a file as the directory was renamed.
void RemoveContents(int dir, int depth) {
  alignas(8) char buf[2048];
  for (int pass = 0; pass < 8; ++pass) {
    bool any = false;
    ::lseek(dir, 0, SEEK_SET);
    for (;;) {
      const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        const Dirent64* d = reinterpret_cast<const Dirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        any = true;
        if (::unlinkat(dir, name, 0) == 0 || errno != EISDIR) continue;
        if (depth < kMaxDepth) {
          const int sub = ::openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (sub >= 0) {
            RemoveContents(sub, depth + 1);
            ::close(sub);
          }
        }
        ::unlinkat(dir, name, AT_REMOVEDIR);
      }
    }
    if (!any) return;
  }
}

void RemoveTree(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ::unlink(path);
    return;
  }
  RemoveContents(fd, 0);
  ::close(fd);
  ::rmdir(path);
}

void OnFatalSignal(int sig) {
  // A second signal (on another thread) waits here for the first cleanup,
  // which ends the process.
  if (g_cleaning.exchange(true)) {
    for (;;) ::pause();
  }
  const struct timespec ms = {0, 1000000};
  while (g_critical.load() > 0) ::nanosleep(&ms, nullptr);
  for (Slot& s : g_slots) {
    int armed = 2;
    if (!s.state.compare_exchange_strong(armed, 3)) continue;
    if (!s.directory) {
      ::unlink(s.path);
    } else if (::rename(s.path, s.aside) == 0) {  // nothing new can appear under the old name
      RemoveTree(s.aside);
    }
  }
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  ::sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);  // pending until the handler returns (the signal is blocked here), then fatal
}

}  // namespace

int SignalCleanup::Register(const std::string& path, bool is_directory) {
  if (path.empty() || path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int free = 0;
    if (!g_slots[i].state.compare_exchange_strong(free, 1)) continue;
    Slot& s = g_slots[i];
    s.directory = is_directory;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    std::memcpy(s.aside, path.c_str(), path.size());
    std::memcpy(s.aside + path.size(), kAsideSuffix, sizeof(kAsideSuffix));
    s.state.store(2, std::memory_order_release);
    return i;
  }
  return -1;
}

void SignalCleanup::Unregister(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  int armed = 2;
  g_slots[slot].state.compare_exchange_strong(armed, 0);
}

SignalCleanup::Critical::Critical() {
  const sigset_t set = CleanupSignals();
  ::pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
  g_critical.fetch_add(1);
}

SignalCleanup::Critical::~Critical() {
  g_critical.fetch_sub(1);
  ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);  // a signal that came meanwhile is delivered here
}

void InstallSignalCleanup() {
  struct sigaction sa{};
  sa.sa_handler = OnFatalSignal;
  sa.sa_mask = CleanupSignals();
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old{};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler == SIG_IGN) continue;  // e.g. nohup, or a background job: keep ignoring
    ::sigaction(sig, &sa, nullptr);
  }
}

Expected<std::unique_ptr<TempFile>> TempFile::Create(const std::string& path) {
  std::unique_ptr<TempFile> f(new TempFile());
  f->path_ = path;
  f->tmp_path_ = path + ".tmp";
  struct stat st{};
  if (::lstat(f->tmp_path_.c_str(), &st) == 0) {
    // A leftover of an interrupted run, or a symlink whose target must not
    // be written through: remove the name. Anything else is not ours.
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
      return Status::Error(f->tmp_path_ + ": exists and is not a regular file; not replaced");
    ::unlink(f->tmp_path_.c_str());
  }
  f->cleanup_slot_ = SignalCleanup::Register(f->tmp_path_, false);
  const int fd = ::open(f->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Error(f->tmp_path_ + ": cannot create: " + std::strerror(errno));
  f->created_ = true;
  f->file_ = ::fdopen(fd, "wb");
  if (!f->file_) {
    ::close(fd);
    return Status::Error(f->tmp_path_ + ": cannot create: " + std::strerror(errno));
  }
  return f;
}

TempFile::~TempFile() {
  if (file_) std::fclose(file_);
  if (created_ && !committed_) ::unlink(tmp_path_.c_str());
  SignalCleanup::Unregister(cleanup_slot_);
}

Status TempFile::Write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, file_) != n)
    return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  return Status::Ok();
}

Status TempFile::Seek(uint64_t offset) {
  if (fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0)
    return Status::Error(tmp_path_ + ": seek failed: " + std::strerror(errno));
  return Status::Ok();
}

Status TempFile::Commit() {
  if (!file_) return Status::Error(tmp_path_ + ": already closed");
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  // Renaming replaces whatever has the name: never a device, FIFO, socket
  // or directory that appeared there while writing.
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
    return Status::Error(path_ + ": exists and is not a regular file; not replaced");
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return Status::Error(path_ + ": cannot rename from " + tmp_path_ + ": " + std::strerror(errno));
  committed_ = true;  // a signal from here on finds the output complete; unlinking PATH.tmp is a no-op
  SignalCleanup::Unregister(cleanup_slot_);
  cleanup_slot_ = -1;
  return Status::Ok();
}

}  // namespace dsv3
