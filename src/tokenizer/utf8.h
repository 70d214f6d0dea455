// UTF-8 helpers for the tokenizer: decoding code points, validation, appending, and Rust-style
// lossy conversion (one U+FFFD per maximal invalid subpart) used when decoding byte tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/utf8_encode.h"

namespace moeforge::tokenizer {

// Byte length of the UTF-8 sequence starting with `lead` (1 for stray continuation bytes).
inline size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point at text[i] (text must be valid UTF-8) and advances i past it.
inline char32_t next_code_point(std::string_view text, size_t& i) {
  auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  size_t n = utf8_length(b);
  char32_t cp = n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n && i + k < text.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
  i += n;
  return cp;
}

// Decodes the code point that ends just before text[end] and moves end to its first byte.
inline char32_t previous_code_point(std::string_view text, size_t& end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  char32_t cp = next_code_point(text, i);
  end = start;
  return cp;
}

inline void append_utf8(std::string& out, char32_t cp) { append_utf8_code_point(out, cp); }

// Length of the valid UTF-8 sequence at text[i], or 0 if the bytes there are not one.
size_t valid_sequence_length(std::string_view text, size_t i);
// Returns the byte offset of the first invalid sequence, or npos when `text` is valid UTF-8.
size_t find_invalid_utf8(std::string_view text);
// Appends `bytes` to `out`, replacing each maximal invalid subpart with U+FFFD.
void append_utf8_lossy(std::string& out, std::string_view bytes);

}  // namespace moeforge::tokenizer

namespace moeforge::tokenizer {

// Unicode White_Space (Rust's char::is_whitespace, Oniguruma's and the regex crate's \s).
inline bool is_white_space(char32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace moeforge::tokenizer
