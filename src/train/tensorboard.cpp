// TFRecord + Event protobuf encoding by hand (no protobuf dependency).
#include "train/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/error.h"

namespace moeforge::train {

namespace {

const uint32_t* crc_table() {
  static uint32_t table[256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli, reflected
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  return table;
}

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, uint32_t field, uint32_t wire) { varint(out, (field << 3) | wire); }
template <typename T>
void fixed(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian host
  out.append(bytes, sizeof(T));
}
void bytes_field(std::string& out, uint32_t field, const std::string& payload) {
  key(out, field, 2);
  varint(out, payload.size());
  out += payload;
}

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  key(e, 1, 1);  // wall_time: double
  fixed(e, wall_time);
  key(e, 2, 0);  // step: int64
  varint(e, static_cast<uint64_t>(step));
  return e;
}

}  // namespace

uint32_t crc32c(const uint8_t* data, size_t size) {
  const uint32_t* table = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const uint8_t* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto now = std::chrono::system_clock::now();
  const double wall = std::chrono::duration<double>(now.time_since_epoch()).count();
  path_ = dir / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(wall)) + ".moeforge." + std::to_string(::getpid()));
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) fail("cannot create TensorBoard event file ", path_.string());
  std::string e = event_header(wall, 0);
  bytes_field(e, 3, "brain.Event:2");  // file_version
  record(e);
  out_.flush();
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values, double wall_time) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    bytes_field(v, 1, tag);  // Summary.Value.tag
    key(v, 2, 5);            // Summary.Value.simple_value: float
    fixed(v, static_cast<float>(value));
    bytes_field(summary, 1, v);  // Summary.value (repeated)
  }
  std::string e = event_header(wall_time, step);
  bytes_field(e, 5, summary);  // Event.summary
  record(e);
}

void TensorBoardWriter::record(const std::string& payload) {
  std::string framed;
  const uint64_t length = payload.size();
  fixed(framed, length);
  fixed(framed, masked_crc32c(reinterpret_cast<const uint8_t*>(framed.data()), 8));
  framed += payload;
  fixed(framed, masked_crc32c(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  out_.write(framed.data(), static_cast<std::streamsize>(framed.size()));
  if (!out_) fail("cannot write TensorBoard event file ", path_.string());
}

}  // namespace moeforge::train
