// Streaming safetensors writer; see safetensors_writer.h.
#include "io/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace dsv3 {

uint64_t TensorSpec::nbytes() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

Expected<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, const std::vector<TensorSpec>& specs,
    const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& s : specs) {
    if (header.contains(s.name)) return Status::Error(path + ": duplicate tensor name '" + s.name + "'");
    const uint64_t n = s.nbytes();
    header[s.name] = {{"dtype", std::string(DTypeName(s.dtype))},
                      {"shape", s.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data section starts on a 64-byte
  // boundary: tensors whose sizes are multiples of 64 then sit on cache
  // lines when mapped, as the SIMD kernels want (the format allows padding).
  while ((text.size() + 8) % 64 != 0) text.push_back(' ');
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter());
  w->path_ = path;
  w->tmp_path_ = path + ".tmp";
  w->expected_bytes_ = offset;
  w->file_ = std::fopen(w->tmp_path_.c_str(), "wb");
  if (!w->file_) return Status::Error(w->tmp_path_ + ": cannot create: " + std::strerror(errno));
  const uint64_t len = text.size();
  if (std::fwrite(&len, 8, 1, w->file_) != 1 || std::fwrite(text.data(), 1, len, w->file_) != len)
    return Status::Error(w->tmp_path_ + ": write failed: " + std::strerror(errno));
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (file_) std::fclose(file_);
  if (!finished_) {
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }
}

Status SafetensorsWriter::Write(const void* data, size_t n) {
  if (written_bytes_ + n > expected_bytes_)
    return Status::Error(tmp_path_ + ": more tensor bytes written than the header declares");
  if (n && std::fwrite(data, 1, n, file_) != n)
    return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  written_bytes_ += n;
  return Status::Ok();
}

Status SafetensorsWriter::Finish() {
  if (written_bytes_ != expected_bytes_)
    return Status::Error(tmp_path_ + ": only " + std::to_string(written_bytes_) + " of " +
                         std::to_string(expected_bytes_) + " tensor bytes written");
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) return Status::Error(path_ + ": cannot rename from " + tmp_path_ + ": " + ec.message());
  finished_ = true;
  return Status::Ok();
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  DSV3_ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(path, specs, metadata));
  for (const auto& t : tensors) DSV3_RETURN_IF_ERROR(writer->Write(t.data, t.spec.nbytes()));
  return writer->Finish();
}

}  // namespace dsv3
