// Fuzzes the TOML reader (recipes and pipeline jobs): any bytes must parse or fail with moeforge::Error.
#include <string_view>

#include "common/error.h"
#include "io/toml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto json = moeforge::parse_toml(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    (void)json.dump();  // the JSON it yields must be printable (`moeforge config`)
  } catch (const moeforge::Error&) {
  }
  return 0;
}
