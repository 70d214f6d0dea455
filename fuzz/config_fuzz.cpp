// Fuzzes config.json parsing into a ModelSpec (every family adapter and its invariants).
#include <nlohmann/json.hpp>

#include "arch/family_adapter.h"
#include "common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json config = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return 0;
  try {
    moeforge::ModelSpec spec = moeforge::spec_from_config(config, nullptr, "fuzz/config.json");
    (void)spec;
  } catch (const moeforge::Error&) {
  }
  return 0;
}
