// Fuzzes the safetensors header parser: arbitrary bytes as header JSON plus a data-section size.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/error.h"
#include "io/safetensors_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t data_bytes;
  std::memcpy(&data_bytes, data, 4);
  std::string_view header(reinterpret_cast<const char*>(data + 4), size - 4);
  try {
    std::map<std::string, std::string> metadata;
    auto tensors = moeforge::SafetensorsFile::parse_header(header, data_bytes, "fuzz", &metadata);
    for (const auto& t : tensors)
      if (t.data_end > data_bytes) __builtin_trap();  // the parser must have rejected this
  } catch (const moeforge::Error&) {
  }
  return 0;
}
