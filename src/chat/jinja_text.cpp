// Unicode-aware string helpers with Python str semantics (see jinja_text.h).
#include "chat/jinja_text.h"

#include <algorithm>

#include "common/utf8_encode.h"

namespace moeforge::jinja {

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    char32_t cp = 0;
    bool ok = len > 0 && i + len <= s.size();
    if (ok) {
      cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
      for (int k = 1; k < len; ++k) {
        unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc >> 6) != 2) { ok = false; break; }
        cp = (cp << 6) | (cc & 0x3F);
      }
      if (ok) {
        static const char32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
      }
    }
    if (!ok) {
      out.push_back(0xDC00 + c);
      i += 1;
    } else {
      out.push_back(cp);
      i += len;
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp >= 0xDC80 && cp <= 0xDCFF) {
    out.push_back(static_cast<char>(cp - 0xDC00));
  } else {
    append_utf8_code_point(out, cp);
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

size_t codepoint_count(std::string_view text) { return decode_utf8(text).size(); }

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::string py_strip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right) {
  std::u32string s = decode_utf8(text);
  std::u32string set = chars ? decode_utf8(*chars) : std::u32string();
  auto strip_me = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t begin = 0, end = s.size();
  if (left) while (begin < end && strip_me(s[begin])) ++begin;
  if (right) while (end > begin && strip_me(s[end - 1])) --end;
  return encode_utf8(std::u32string_view(s).substr(begin, end - begin));
}

std::vector<std::string> py_split(std::string_view text, const std::optional<std::string>& sep, long maxsplit) {
  std::vector<std::string> parts;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<long>(parts.size()) < maxsplit) {
      size_t hit = text.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(text.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    parts.emplace_back(text.substr(pos));
    return parts;
  }
  std::u32string s = decode_utf8(text);
  size_t i = 0;
  while (true) {
    while (i < s.size() && py_isspace(s[i])) ++i;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && static_cast<long>(parts.size()) >= maxsplit) {
      size_t end = s.size();
      while (end > i && py_isspace(s[end - 1])) --end;
      parts.push_back(encode_utf8(std::u32string_view(s).substr(i, end - i)));
      break;
    }
    size_t j = i;
    while (j < s.size() && !py_isspace(s[j])) ++j;
    parts.push_back(encode_utf8(std::u32string_view(s).substr(i, j - i)));
    i = j;
  }
  return parts;
}

std::vector<std::string> py_rsplit(std::string_view text, const std::optional<std::string>& sep, long maxsplit) {
  if (maxsplit < 0) return py_split(text, sep, maxsplit);
  std::vector<std::string> parts;
  if (sep) {
    size_t end = text.size();
    while (static_cast<long>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t hit = text.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      parts.emplace_back(text.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    parts.emplace_back(text.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  std::u32string s = decode_utf8(text);
  size_t j = s.size();
  while (true) {
    while (j > 0 && py_isspace(s[j - 1])) --j;
    if (j == 0) break;
    if (static_cast<long>(parts.size()) >= maxsplit) {
      size_t begin = 0;
      while (begin < j && py_isspace(s[begin])) ++begin;
      parts.push_back(encode_utf8(std::u32string_view(s).substr(begin, j - begin)));
      break;
    }
    size_t i = j;
    while (i > 0 && !py_isspace(s[i - 1])) --i;
    parts.push_back(encode_utf8(std::u32string_view(s).substr(i, j - i)));
    j = i;
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::string py_replace(std::string_view text, std::string_view old, std::string_view replacement, long count) {
  std::string out;
  long done = 0;
  if (old.empty()) {
    std::u32string s = decode_utf8(text);
    for (size_t i = 0; i <= s.size(); ++i) {
      if (count < 0 || done < count) {
        out.append(replacement);
        ++done;
      }
      if (i < s.size()) append_utf8(out, s[i]);
    }
    return out;
  }
  size_t pos = 0;
  while (count < 0 || done < count) {
    size_t hit = text.find(old, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(replacement);
    pos = hit + old.size();
    ++done;
  }
  out.append(text.substr(pos));
  return out;
}

std::vector<std::string> py_splitlines(std::string_view text) {
  std::u32string s = decode_utf8(text);
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
  };
  while (i < s.size()) {
    if (is_break(s[i])) {
      lines.push_back(encode_utf8(std::u32string_view(s).substr(start, i - start)));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = ++i;
    } else {
      ++i;
    }
  }
  if (start < s.size()) lines.push_back(encode_utf8(std::u32string_view(s).substr(start)));
  return lines;
}

namespace {
// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (what Python does for
// these blocks, minus the few one-to-many mappings other than German sharp s).
char32_t lower_cp(char32_t c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c == 0x178) return 0xFF;
  if ((c >= 0x391 && c <= 0x3A9 && c != 0x3A2)) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
char32_t upper_cp(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x3B1 && c <= 0x3C9) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
bool is_cased(char32_t c) { return lower_cp(c) != c || upper_cp(c) != c || c == 0xDF; }
}  // namespace

std::string py_upper(std::string_view text) {
  std::string out;
  for (char32_t c : decode_utf8(text)) {
    if (c == 0xDF) {
      out += "SS";
    } else {
      append_utf8(out, upper_cp(c));
    }
  }
  return out;
}

std::string py_lower(std::string_view text) {
  std::string out;
  for (char32_t c : decode_utf8(text)) append_utf8(out, lower_cp(c));
  return out;
}

std::string py_capitalize(std::string_view text) {
  std::u32string s = decode_utf8(text);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 0) {
      std::string first;
      append_utf8(first, s[0]);
      out += py_upper(first);
    } else {
      append_utf8(out, lower_cp(s[i]));
    }
  }
  return out;
}

std::string py_str_title(std::string_view text) {
  std::string out;
  bool prev_cased = false;
  for (char32_t c : decode_utf8(text)) {
    append_utf8(out, prev_cased ? lower_cp(c) : upper_cp(c));
    prev_cased = is_cased(c);
  }
  return out;
}

std::string py_title(std::string_view text) {
  // jinja2: split on runs of [-\s({\[<] (kept), then item[0].upper() + item[1:].lower() per piece.
  std::u32string s = decode_utf8(text);
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    bool sep = is_sep(s[i]);
    while (j < s.size() && is_sep(s[j]) == sep) ++j;
    std::string piece = encode_utf8(std::u32string_view(s).substr(i, j - i));
    if (sep) {
      out += piece;
    } else {
      out += py_capitalize(piece);
    }
    i = j;
  }
  return out;
}

}  // namespace moeforge::jinja
