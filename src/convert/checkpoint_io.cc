// Input checkpoints, staged output directories, auxiliary files; see checkpoint_io.h.
#include "convert/checkpoint_io.h"

#include <algorithm>
#include <filesystem>

#include "core/mapped_file.h"
#include "io/temp_file.h"

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

// What a non-regular, non-directory name is, for error messages.
const char* KindOf(fs::file_type t) {
  switch (t) {
    case fs::file_type::symlink: return "a symbolic link";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

bool IsOurOutputDir(const fs::path& dir) {
  std::error_code ec;
  return fs::symlink_status(dir / kOutputMarker, ec).type() == fs::file_type::regular;
}

// May `path` (not followed if a symlink) be replaced? Missing: yes; present:
// only with `force`, and only a regular file or a directory dsv3 wrote.
// `label` is the path as the user gave it.
Status CheckReplaceable(const fs::path& path, const std::string& label, bool force) {
  std::error_code ec;
  const fs::file_type type = fs::symlink_status(path, ec).type();
  if (type == fs::file_type::not_found) return Status::Ok();
  if (ec) return Status::Error(label + ": cannot stat: " + ec.message());
  if (!force) return Status::Error(label + ": already exists (use --force to replace it)");
  if (type == fs::file_type::regular) return Status::Ok();
  if (type == fs::file_type::directory) {
    if (IsOurOutputDir(path)) return Status::Ok();
    return Status::Error(label + ": is a directory dsv3 did not write (no " + kOutputMarker +
                         " inside); --force does not replace it");
  }
  return Status::Error(label + ": is " + KindOf(type) +
                       "; --force replaces only regular files and directories dsv3 wrote");
}

// Removes a leftover of an earlier run under one of our reserved names
// ("<out>.dsv3-partial", "<out>.dsv3-old"): a symlink or file is unlinked
// (never followed), a directory only if it is ours or empty.
Status RemoveLeftover(const fs::path& path) {
  std::error_code ec;
  const fs::file_type type = fs::symlink_status(path, ec).type();
  if (type == fs::file_type::not_found) return Status::Ok();
  if (type == fs::file_type::directory && !IsOurOutputDir(path) && !fs::is_empty(path, ec))
    return Status::Error(path.string() + ": exists and was not written by dsv3; remove it first");
  if (type != fs::file_type::directory && type != fs::file_type::regular && type != fs::file_type::symlink)
    return Status::Error(path.string() + ": is " + KindOf(type) + "; remove it first");
  fs::remove_all(path, ec);  // does not follow symlinks
  if (ec) return Status::Error(path.string() + ": cannot remove: " + ec.message());
  return Status::Ok();
}

// The output path made absolute with its parent resolved, but its own last
// component kept as given: a symlink named as the output is the output (and
// refused by CheckReplaceable), never the directory it points to.
fs::path OutputPath(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "out/" -> "out"
  return fs::weakly_canonical(p.parent_path(), ec) / p.filename();
}

}  // namespace

Expected<std::unique_ptr<StagedDir>> StagedDir::Create(const std::string& final_dir, const std::string& input_dir,
                                                       bool force) {
  std::error_code ec;
  const fs::path out = OutputPath(final_dir), in = fs::weakly_canonical(input_dir, ec);
  if (Overlaps(out, in))
    return Status::Error(final_dir + ": the output directory must not be or contain the input " + input_dir +
                         " (or lie inside it)");
  DSV3_RETURN_IF_ERROR(CheckReplaceable(out, final_dir, force));
  if (!fs::is_directory(out.parent_path(), ec))
    return Status::Error(final_dir + ": parent directory " + out.parent_path().string() + " does not exist");
  std::unique_ptr<StagedDir> d(new StagedDir());
  d->final_ = out.string();
  d->staging_ = out.string() + ".dsv3-partial";
  d->force_ = force;
  DSV3_RETURN_IF_ERROR(RemoveLeftover(d->staging_));  // of an interrupted run of ours
  d->cleanup_slot_ = SignalCleanup::Register(d->staging_, true);
  if (!fs::create_directory(d->staging_, ec)) {
    d->committed_ = true;  // not ours to remove
    return Status::Error(d->staging_ + ": cannot create: " + (ec ? ec.message() : "exists"));
  }
  DSV3_RETURN_IF_ERROR(WriteTextFile((fs::path(d->staging_) / kOutputMarker).string(),
                                     "written by dsv3 convert; dsv3 convert --force may replace this directory\n"));
  return d;
}

StagedDir::~StagedDir() {
  SignalCleanup::Unregister(cleanup_slot_);
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

Status StagedDir::Commit() {
  // The old output moves aside and the new one in as one step for signals.
  SignalCleanup::Critical critical;
  std::error_code ec;
  std::string old;
  if (fs::symlink_status(final_, ec).type() != fs::file_type::not_found) {
    if (!force_) return Status::Error(final_ + ": appeared while converting; not replaced (use --force)");
    DSV3_RETURN_IF_ERROR(CheckReplaceable(final_, final_, force_));
    old = final_ + ".dsv3-old";
    DSV3_RETURN_IF_ERROR(RemoveLeftover(old));
    fs::rename(final_, old, ec);
    if (ec) return Status::Error(final_ + ": cannot move the existing output aside: " + ec.message());
  }
  fs::rename(staging_, final_, ec);
  if (ec) return Status::Error(final_ + ": cannot rename from " + staging_ + ": " + ec.message());
  committed_ = true;
  SignalCleanup::Unregister(cleanup_slot_);
  cleanup_slot_ = -1;
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::Ok();
}

Status CheckOutputFile(const std::string& path, bool force) {
  std::error_code ec;
  const fs::path out = OutputPath(path);
  if (fs::symlink_status(out, ec).type() == fs::file_type::directory)
    return Status::Error(path + ": is a directory; give a .gguf file name");
  DSV3_RETURN_IF_ERROR(CheckReplaceable(out, path, force));
  if (!fs::is_directory(out.parent_path(), ec))
    return Status::Error(path + ": parent directory " + out.parent_path().string() + " does not exist");
  return Status::Ok();
}

Expected<int64_t> CopyAuxiliaryFiles(const std::string& in_dir, const std::string& out_dir) {
  int64_t copied = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(in_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || name == "model.safetensors.index.json" || name == kOutputMarker ||
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
  DSV3_ASSIGN_OR_RETURN(auto file, TempFile::Create(path));
  DSV3_RETURN_IF_ERROR(file->Write(text.data(), text.size()));
  return file->Commit();
}

}  // namespace dsv3
