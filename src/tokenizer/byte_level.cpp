// GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes map to
// U+0100 upwards in byte order.
#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {

ByteLevelTable::ByteLevelTable() {
  decode_.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    char32_t cp = printable ? b : next++;
    std::string s;
    append_utf8(s, cp);
    lengths_[b] = static_cast<uint8_t>(s.size());
    for (size_t i = 0; i < s.size(); ++i) encoded_[b][i] = s[i];
    decode_[cp] = static_cast<int16_t>(b);
  }
}

void ByteLevelTable::append_encoded(std::string& out, std::string_view bytes) const {
  for (unsigned char b : bytes) out.append(encoded_[b].data(), lengths_[b]);
}

bool ByteLevelTable::append_decoded(std::string& out, std::string_view token) const {
  size_t old = out.size();
  for (size_t i = 0; i < token.size();) {
    char32_t cp = next_code_point(token, i);
    if (cp >= decode_.size() || decode_[cp] < 0) {
      out.resize(old);
      return false;
    }
    out.push_back(static_cast<char>(decode_[cp]));
  }
  return true;
}

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;  // immutable after construction
  return table;
}

}  // namespace moeforge::tokenizer
