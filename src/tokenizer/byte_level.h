// GPT-2's byte <-> printable-character table used by the ByteLevel pre-tokenizer and decoder.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace moeforge::tokenizer {

class ByteLevelTable {
 public:
  ByteLevelTable();
  // The character standing for byte b, as UTF-8.
  std::string_view encode(uint8_t b) const { return {encoded_[b].data(), lengths_[b]}; }
  // Appends the characters for every byte of `bytes`.
  void append_encoded(std::string& out, std::string_view bytes) const;
  // Appends the byte each character of `token` stands for; false (nothing appended) if some
  // character is not in the table.
  bool append_decoded(std::string& out, std::string_view token) const;

 private:
  std::array<std::array<char, 2>, 256> encoded_{};
  std::array<uint8_t, 256> lengths_{};
  std::array<int16_t, 512> decode_{};  // code point (< 512) -> byte, or -1
};

// The one shared instance (immutable, built on first use).
const ByteLevelTable& byte_level_table();

}  // namespace moeforge::tokenizer
