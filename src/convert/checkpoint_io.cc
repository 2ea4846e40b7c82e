// Input checkpoints, staged output directories, auxiliary files; see checkpoint_io.h.
#include "convert/checkpoint_io.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/mapped_file.h"

namespace dsv3 {

namespace fs = std::filesystem;

Expected<InputCheckpoint> OpenInputCheckpoint(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::Error(dir + ": not a checkpoint directory");
  InputCheckpoint in;
  in.config_path = (fs::path(dir) / "config.json").string();
  DSV3_ASSIGN_OR_RETURN(in.config_text, ReadTextFile(in.config_path));
  in.indexed = fs::exists(fs::path(dir) / "model.safetensors.index.json", ec);
  DSV3_ASSIGN_OR_RETURN(in.store, TensorStore::Open(dir));
  for (const auto& file : in.store->files()) {
    InputShard shard;
    shard.file_name = fs::path(file->path()).filename().string();
    shard.file = file.get();
    for (const auto& t : file->tensors()) {
      if (in.store->Find(t.name) != &t)
        return Status::Error(file->path() + ": tensor '" + t.name +
                             "' is not listed in model.safetensors.index.json (missing index entry)");
      shard.tensors.push_back(&t);
      in.total_bytes += t.nbytes;
    }
    std::sort(shard.tensors.begin(), shard.tensors.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->data < b->data; });
    in.num_tensors += static_cast<int64_t>(shard.tensors.size());
    in.shards.push_back(std::move(shard));
  }
  std::sort(in.shards.begin(), in.shards.end(),
            [](const InputShard& a, const InputShard& b) { return a.file_name < b.file_name; });
  return in;
}

namespace {
// True when one of the two paths lies inside (or is) the other.
bool Overlaps(const fs::path& a, const fs::path& b) {
  auto inside = [](const fs::path& outer, const fs::path& inner) {
    auto o = outer.begin(), i = inner.begin();
    for (; o != outer.end() && i != inner.end(); ++o, ++i)
      if (*o != *i) return false;
    return o == outer.end();
  };
  return inside(a, b) || inside(b, a);
}
}  // namespace

Expected<std::unique_ptr<StagedDir>> StagedDir::Create(const std::string& final_dir, const std::string& input_dir,
                                                       bool force) {
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(final_dir, ec), in = fs::weakly_canonical(input_dir, ec);
  if (Overlaps(out, in))
    return Status::Error(final_dir + ": the output directory must not be or contain the input " + input_dir +
                         " (or lie inside it)");
  if (fs::exists(out, ec) && !force)
    return Status::Error(final_dir + ": already exists (use --force to replace it)");
  if (out.has_parent_path() && !fs::is_directory(out.parent_path(), ec))
    return Status::Error(final_dir + ": parent directory " + out.parent_path().string() + " does not exist");
  std::unique_ptr<StagedDir> d(new StagedDir());
  d->final_ = out.string();
  d->staging_ = out.string() + ".dsv3-partial";
  d->force_ = force;
  fs::remove_all(d->staging_, ec);  // leftovers of an interrupted run of ours
  if (!fs::create_directory(d->staging_, ec))
    return Status::Error(d->staging_ + ": cannot create: " + (ec ? ec.message() : "exists"));
  return d;
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

Status StagedDir::Commit() {
  std::error_code ec;
  std::string old;
  if (fs::exists(final_, ec)) {
    if (!force_) return Status::Error(final_ + ": appeared while converting; not replaced (use --force)");
    old = final_ + ".dsv3-old";
    fs::remove_all(old, ec);
    fs::rename(final_, old, ec);
    if (ec) return Status::Error(final_ + ": cannot move the existing output aside: " + ec.message());
  }
  fs::rename(staging_, final_, ec);
  if (ec) return Status::Error(final_ + ": cannot rename from " + staging_ + ": " + ec.message());
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::Ok();
}

Status CheckOutputFile(const std::string& path, bool force) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return Status::Error(path + ": is a directory; give a .gguf file name");
  if (fs::exists(path, ec) && !force) return Status::Error(path + ": already exists (use --force to replace it)");
  const fs::path parent = fs::absolute(path, ec).parent_path();
  if (!fs::is_directory(parent, ec)) return Status::Error(path + ": parent directory " + parent.string() + " does not exist");
  return Status::Ok();
}

Expected<int64_t> CopyAuxiliaryFiles(const std::string& in_dir, const std::string& out_dir) {
  int64_t copied = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(in_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || name == "model.safetensors.index.json" ||
        entry.path().extension() == ".safetensors")
      continue;
    const fs::path dst = fs::path(out_dir) / name;
    std::error_code cec;
    fs::copy(entry.path(), dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks, cec);
    if (cec) return Status::Error(entry.path().string() + ": cannot copy to " + dst.string() + ": " + cec.message());
    ++copied;
  }
  if (ec) return Status::Error(in_dir + ": cannot list: " + ec.message());
  return copied;
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::Error(tmp + ": cannot create: " + std::strerror(errno));
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !flushed || !closed) {
    std::remove(tmp.c_str());
    return Status::Error(tmp + ": write failed: " + std::strerror(err));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::Error(path + ": cannot rename from " + tmp + ": " + ec.message());
  return Status::Ok();
}

}  // namespace dsv3
