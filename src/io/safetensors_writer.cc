// Streaming safetensors writer; see safetensors_writer.h.
#include "io/safetensors_writer.h"

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
  w->expected_bytes_ = offset;
  DSV3_ASSIGN_OR_RETURN(w->file_, TempFile::Create(path));
  const uint64_t len = text.size();
  DSV3_RETURN_IF_ERROR(w->file_->Write(&len, 8));
  DSV3_RETURN_IF_ERROR(w->file_->Write(text.data(), len));
  w->header_bytes_ = 8 + len;
  return w;
}

Status SafetensorsWriter::Write(const void* data, size_t n) {
  if (written_bytes_ + n > expected_bytes_)
    return Status::Error(file_->tmp_path() + ": more tensor bytes written than the header declares");
  DSV3_RETURN_IF_ERROR(file_->Write(data, n));
  written_bytes_ += n;
  return Status::Ok();
}

Status SafetensorsWriter::WriteAt(uint64_t offset, const void* data, size_t n) {
  if (offset + n > expected_bytes_ || written_bytes_ + n > expected_bytes_)
    return Status::Error(file_->tmp_path() + ": bytes written past the tensors the header declares");
  DSV3_RETURN_IF_ERROR(file_->Seek(header_bytes_ + offset));
  DSV3_RETURN_IF_ERROR(file_->Write(data, n));
  written_bytes_ += n;
  return Status::Ok();
}

Status SafetensorsWriter::Finish() {
  if (written_bytes_ != expected_bytes_)
    return Status::Error(file_->tmp_path() + ": only " + std::to_string(written_bytes_) + " of " +
                         std::to_string(expected_bytes_) + " tensor bytes written");
  return file_->Commit();
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
