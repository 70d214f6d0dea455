// UTF-8 validation and lossy conversion (see utf8.h).
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {
namespace {
// How many bytes of the sequence at text[i] form a valid prefix (the "maximal subpart"), and
// whether the whole sequence is complete. Follows Unicode Table 3-7.
size_t valid_prefix(std::string_view text, size_t i, bool& complete) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  unsigned char b = at(0);
  complete = false;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b < 0x80) {
    complete = true;
    return 1;
  } else if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  size_t k = 1;
  for (; k < need; ++k) {
    if (i + k >= text.size()) return k;
    unsigned char c = at(k);
    unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (c < min || c > max) return k;
  }
  complete = true;
  return need;
}
}  // namespace

size_t valid_sequence_length(std::string_view text, size_t i) {
  bool complete;
  size_t n = valid_prefix(text, i, complete);
  return complete ? n : 0;
}

size_t find_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = valid_sequence_length(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

void append_utf8_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete;
    size_t n = valid_prefix(bytes, i, complete);
    if (complete) {
      out.append(bytes.data() + i, n);
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += n == 0 ? 1 : n;
    }
  }
}

}  // namespace moeforge::tokenizer
