// TensorBoard event files written directly: TFRecord framing (uint64 length, masked CRC32C of the
// length, payload, masked CRC32C of the payload) around Event protobufs
// {wall_time, step, file_version | summary{value{tag, simple_value}}}.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace moeforge::train {

uint32_t crc32c(const uint8_t* data, size_t size);
uint32_t masked_crc32c(const uint8_t* data, size_t size);

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix time>.moeforge.<pid> and writes the file_version event.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  // One Event holding several scalars at `step`.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values, double wall_time);
  void flush() { out_.flush(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  void record(const std::string& payload);
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace moeforge::train
