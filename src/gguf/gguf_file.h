// The GGUF v3 container (llama.cpp's model file): typed key/value metadata, then tensor infos
// (name, dims innermost first, ggml type, offset), then the tensor data, each tensor aligned to 32
// bytes. GgufFileWriter streams: the header is written from the declarations, then every tensor's
// bytes in order, into a locked temporary directory beside the target (io/stale_temps.h: one that a
// killed export left behind is removed by the next) and renamed over the target only when complete.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace moeforge {

class OwnedTempDir;

// The ggml tensor types export-gguf writes (values from ggml.h).
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30, MXFP4 = 39 };
const char* ggml_type_name(GgmlType type);
// Bytes of `elements` values (a multiple of the type's block size: 32 for Q8_0 and MXFP4).
uint64_t ggml_bytes(GgmlType type, uint64_t elements);

// One metadata value; arrays are of strings, int32 or float32, the three the converter writes.
using GgufValue = std::variant<uint32_t, int32_t, float, bool, std::string, std::vector<std::string>,
                               std::vector<int32_t>, std::vector<float>>;

// Keys in insertion order; setting a key again replaces its value (as llama.cpp's writer does).
class GgufMetadata {
 public:
  void set(const std::string& key, GgufValue value);
  bool has(const std::string& key) const { return index_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::map<std::string, size_t> index_;
};

struct GgufTensorDecl {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the innermost (row length)
  GgmlType type = GgmlType::F32;
  uint64_t elements() const;
  uint64_t bytes() const { return ggml_bytes(type, elements()); }
};

class GgufFileWriter {
 public:
  // Writes the header of `tensors` into the temporary file; append() each tensor's bytes in order,
  // then finish() renames the file into place. A writer destroyed before finish() removes its temp.
  GgufFileWriter(const std::filesystem::path& out, const GgufMetadata& metadata, std::vector<GgufTensorDecl> tensors);
  ~GgufFileWriter();
  GgufFileWriter(const GgufFileWriter&) = delete;
  GgufFileWriter& operator=(const GgufFileWriter&) = delete;

  // Bytes of the current tensor (any number of calls per tensor; they must add up to its size).
  void append(const void* data, size_t bytes);
  void finish();
  uint64_t bytes_written() const { return written_; }

 private:
  void write_raw(const void* data, size_t bytes);
  void pad_to_alignment();
  void next_tensor_if_full();
  std::filesystem::path out_, temp_;
  std::unique_ptr<OwnedTempDir> temp_dir_;
  std::FILE* file_ = nullptr;
  std::vector<GgufTensorDecl> tensors_;
  size_t current_ = 0;
  uint64_t current_written_ = 0, written_ = 0;
  bool finished_ = false;
};

}  // namespace moeforge
