// Fuzzes the tokenizer.json loader, then encodes/decodes a fixed text with whatever loaded.
#include <string_view>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    auto tokenizer = moeforge::tokenizer::Tokenizer::from_json_string(json, "fuzz/tokenizer.json");
    auto ids = tokenizer.encode("Hello, world! 123 \xc3\xa9t\xc3\xa9 <|endoftext|>  x", true);
    (void)tokenizer.decode(ids, false);
  } catch (const moeforge::Error&) {
  }
  return 0;
}
