// One .safetensors file: header parsed and validated at open, tensor bytes viewed zero-copy from a
// memory mapping. Validation: header length vs file size, JSON well-formed and capped, dtype known,
// offsets in bounds, byte count = product(shape) x dtype size, no two tensors overlapping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/mapped_file.h"

namespace moeforge {

// A read-only view of bytes owned by someone else (the mapping or a buffer).
struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;  // relative to the start of the data section, as in the header
  uint64_t data_end = 0;
  uint64_t num_elements() const;
  uint64_t num_bytes() const { return data_end - data_begin; }
};

// Largest header we accept; the reference implementation caps it at 100 MB as well.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1000 * 1000;

class SafetensorsFile {
 public:
  // Maps and validates the file; throws moeforge::Error "<file>: <what is wrong>" on any defect.
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
  // Parses and validates a header from memory (used by open() and by the fuzzer).
  // `data_bytes` is the size of the data section that follows the header.
  static std::vector<TensorInfo> parse_header(std::string_view header_json, uint64_t data_bytes,
                                              const std::string& file_label,
                                              std::map<std::string, std::string>* metadata);

  const std::filesystem::path& path() const { return mapping_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file (offset) order
  const TensorInfo* find(const std::string& name) const;
  ByteView bytes(const TensorInfo& tensor) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t data_section_offset() const { return data_offset_; }
  uint64_t file_size() const { return mapping_->size(); }
  const MappedFile& mapping() const { return *mapping_; }

 private:
  SafetensorsFile() = default;
  std::unique_ptr<MappedFile> mapping_;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace moeforge
