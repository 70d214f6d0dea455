// Read-only memory mapping of a whole file (RAII). Pages are loaded lazily by the kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace moeforge {

class MappedFile {
 public:
  // Throws moeforge::Error naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Hints the kernel to read [offset, offset + length) ahead (sequential streaming).
  void advise_sequential(size_t offset, size_t length) const;
  // Hints that the whole mapping will be read front to back once (MADV_SEQUENTIAL: aggressive
  // read-ahead on a cold cache; no cost on a warm one).
  void advise_streaming() const;

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moeforge
