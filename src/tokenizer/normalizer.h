// Normalizers from tokenizer.json ("normalizer"): NFC, NFD, Prepend, Replace, Strip, ByteLevel and
// Sequence; anything else is rejected with a clear error when loading.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/json_fields.h"

namespace moeforge::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Writes the normalized form of `in` (valid UTF-8) to `out` and returns true, or returns false
  // when `in` is already normal (then `out` is left alone).
  virtual bool normalize(std::string_view in, std::string& out) const = 0;
};

class Regex;
// A {"String": s} or {"Regex": r} pattern as a Regex (strings are matched literally).
std::unique_ptr<Regex> make_pattern(const Json& spec, const JsonPath& at);

// Builds the normalizer described by `spec`; nullptr for JSON null.
std::unique_ptr<Normalizer> make_normalizer(const Json& spec, const JsonPath& at);

// Applies `normalizer` (may be null) and returns the result: `in` itself or a view of `buffer`.
std::string_view apply_normalizer(const Normalizer* normalizer, std::string_view in,
                                  std::string& buffer);

}  // namespace moeforge::tokenizer
