// Split GGUF sets as llama.cpp's gguf-split writes them: PREFIX-00001-of-00003.gguf
// and so on, every part with split.count and its split.no (0-based), the
// first part holding the model's metadata and split.tensors.count, the total
// number of tensors. Any part opens the whole set; a missing part, a part
// whose split keys disagree, or a set whose tensors do not add up to
// split.tensors.count is an error naming the file.
#include <regex>

#include "io/gguf.h"

namespace dsv3 {

namespace {

std::string PartName(const std::string& prefix, int64_t no, int64_t count) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "-%05lld-of-%05lld.gguf", static_cast<long long>(no), static_cast<long long>(count));
  return prefix + buf;
}

// The split key `key` of part `f` as an integer, or an error naming the file.
Expected<int64_t> SplitKey(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.Find(key);
  if (!v || !v->is_integer()) return Status::Error(f.path() + ": split GGUF part without integer metadata '" + key + "'");
  return v->AsInt();
}

}  // namespace

Expected<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto f, OpenOne(path));
  const GgufValue* count = f->Find("split.count");
  if (!count || !count->is_integer() || count->AsInt() <= 1) return f;
  return OpenSplit(path, count->AsInt());
}

Expected<std::unique_ptr<GgufFile>> GgufFile::OpenSplit(const std::string& path, int64_t count) {
  static const std::regex kName(R"((.*)-(\d{5})-of-(\d{5})\.gguf)");
  std::smatch m;
  if (!std::regex_match(path, m, kName) || std::stoll(m[3].str()) != count)
    return Status::Error(path + ": split.count is " + std::to_string(count) + " but the file is not named PREFIX-0000N-of-" +
                         PartName("", count, count).substr(10) + " as gguf-split names the parts of a set");
  const std::string prefix = m[1].str();
  std::vector<std::unique_ptr<GgufFile>> parts;
  for (int64_t no = 1; no <= count; ++no) {
    const std::string name = PartName(prefix, no, count);
    auto part = OpenOne(name);
    if (!part.ok())
      return Status::Error("split GGUF " + path + ": part " + std::to_string(no) + " of " + std::to_string(count) +
                           " (" + name + ") cannot be read: " + part.status().message());
    DSV3_ASSIGN_OR_RETURN(const int64_t c, SplitKey(**part, "split.count"));
    DSV3_ASSIGN_OR_RETURN(const int64_t n, SplitKey(**part, "split.no"));
    if (c != count || n != no - 1)
      return Status::Error(name + ": split.count " + std::to_string(c) + ", split.no " + std::to_string(n) +
                           " do not make it part " + std::to_string(no) + " of " + std::to_string(count) +
                           " (split.no counts from 0): parts from different sets?");
    parts.push_back(std::move(*part));
  }
  std::unique_ptr<GgufFile> first = std::move(parts[0]);
  DSV3_ASSIGN_OR_RETURN(const int64_t total, SplitKey(*first, "split.tensors.count"));
  for (size_t i = 1; i < parts.size(); ++i) {
    const GgufValue* t = parts[i]->Find("split.tensors.count");
    if (t && t->is_integer() && t->AsInt() != total)
      return Status::Error(parts[i]->path() + ": split.tensors.count " + std::to_string(t->AsInt()) + " but " +
                           first->path() + " says " + std::to_string(total) + ": parts from different models");
    for (const GgufTensorInfo& info : parts[i]->tensors()) {
      if (!first->tensor_index_.emplace(info.name, first->tensors_.size()).second)
        return Status::Error(parts[i]->path() + ": tensor '" + info.name + "' is also in another part of the set");
      first->tensors_.push_back(info);
    }
    first->parts_.push_back(std::move(parts[i]));
  }
  if (static_cast<int64_t>(first->tensors_.size()) != total)
    return Status::Error("split GGUF " + first->path() + ": the " + std::to_string(count) + " parts hold " +
                         std::to_string(first->tensors_.size()) + " tensors but split.tensors.count is " +
                         std::to_string(total) + ": parts from different models?");
  return first;
}

}  // namespace dsv3
