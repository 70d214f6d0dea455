// A recursive-descent TOML 1.0 reader producing nlohmann::json. Table bookkeeping follows the
// spec: a table is defined once (by a header or by dotted keys), inline tables and value arrays
// are closed, and [[x]] starts a fresh element whose sub-tables may be defined again.
#include "io/toml.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include "common/error.h"
#include "common/utf8_encode.h"
#include "io/checkpoint_store.h"

namespace moeforge {

namespace {

using Json = nlohmann::json;
using Key = std::vector<std::string>;

// Per-key state for the redefinition rules, as a trie over key parts.
struct Flags {
  bool frozen = false;        // inline table or value array: nothing may be added below it
  bool explicit_nest = false; // defined by a [header] or by dotted keys: no second definition
  std::map<std::string, Flags> nested;

  Flags* find(const Key& key) {
    Flags* node = this;
    for (const auto& part : key) {
      auto it = node->nested.find(part);
      if (it == node->nested.end()) return nullptr;
      node = &it->second;
    }
    return node;
  }
  Flags& at(const Key& key) {
    Flags* node = this;
    for (const auto& part : key) node = &node->nested[part];
    return *node;
  }
  // Frozen at the key or at any prefix of it.
  bool frozen_at(const Key& key) {
    Flags* node = this;
    for (const auto& part : key) {
      auto it = node->nested.find(part);
      if (it == node->nested.end()) return false;
      node = &it->second;
      if (node->frozen) return true;
    }
    return false;
  }
};

std::string join_key(const Key& key) {
  std::string out;
  for (const auto& part : key) out += (out.empty() ? "" : ".") + part;
  return out;
}

// Nesting bound (arrays, inline tables, key parts): deep input must fail with a message, not
// exhaust the stack of this recursive parser.
constexpr size_t kMaxDepth = 128;

bool is_bare_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

class Parser {
 public:
  Parser(std::string_view text, std::string label) : s_(text), label_(std::move(label)) {}

  Json parse() {
    check_utf8();
    Json root = Json::object();
    Key header;  // current [table] / [[array]] key
    while (true) {
      skip_ws_comments_newlines();
      if (at_end()) break;
      if (peek() == '[') {
        if (peek(1) == '[') header = array_table(root);
        else header = table(root);
      } else {
        key_value(root, header);
      }
      end_of_line();
    }
    return root;
  }

 private:
  // ---- errors and position -------------------------------------------------------------------
  [[noreturn]] void error(const std::string& what, size_t at) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80) {
        ++col;
      }
    }
    fail(label_, ":", line, ":", col, ": ", what);
  }
  [[noreturn]] void error(const std::string& what) const { error(what, pos_); }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }
  bool starts_with(std::string_view token) const { return s_.substr(pos_, token.size()) == token; }
  bool accept(char c) {  // consumes `c` when it is next
    if (at_end() || peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c, const char* what) {
    if (peek() != c || at_end()) error(std::string("expected ") + what);
    ++pos_;
  }

  void check_utf8() const {
    size_t i = 0;
    while (i < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
      if (n == 0 || i + n > s_.size()) error("invalid UTF-8", i);
      char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
      for (size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(s_[i + k]);
        if ((cc & 0xC0) != 0x80) error("invalid UTF-8", i);
        cp = (cp << 6) | (cc & 0x3F);
      }
      const char32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) error("invalid UTF-8", i);
      i += n;
    }
  }

  // ---- whitespace, comments, newlines --------------------------------------------------------
  void skip_ws() {
    while (peek() == ' ' || peek() == '\t') ++pos_;
  }
  void skip_comment() {
    if (peek() != '#') return;
    while (!at_end() && peek() != '\n') {
      const auto c = static_cast<unsigned char>(peek());
      if ((c < 0x20 && c != '\t' && !(c == '\r' && peek(1) == '\n')) || c == 0x7F) error("control character in a comment");
      ++pos_;
    }
  }
  bool newline() {  // consumes LF or CRLF
    if (peek() == '\n') {
      ++pos_;
      return true;
    }
    if (peek() == '\r' && peek(1) == '\n') {
      pos_ += 2;
      return true;
    }
    return false;
  }
  void skip_ws_comments_newlines() {
    while (true) {
      skip_ws();
      skip_comment();
      if (!newline()) return;
    }
  }
  void end_of_line() {
    skip_ws();
    skip_comment();
    if (!at_end() && !newline()) error("expected the end of the line after a value or header");
  }

  // ---- keys -----------------------------------------------------------------------------------
  std::string simple_key() {
    if (peek() == '"') {
      if (starts_with("\"\"\"")) error("a key cannot be a multi-line string");
      return basic_string();
    }
    if (peek() == '\'') {
      if (starts_with("'''")) error("a key cannot be a multi-line string");
      return literal_string();
    }
    const size_t start = pos_;
    while (!at_end() && is_bare_key_char(peek())) ++pos_;
    if (pos_ == start) error("expected a key");
    return std::string(s_.substr(start, pos_ - start));
  }
  Key dotted_key() {
    Key key{simple_key()};
    while (true) {
      skip_ws();
      if (peek() != '.') return key;
      ++pos_;
      skip_ws();
      if (key.size() >= kMaxDepth) error("a key with more than " + std::to_string(kMaxDepth) + " parts");
      key.push_back(simple_key());
    }
  }

  // Counts array / inline-table nesting while a value is parsed.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.error("values nested more than " + std::to_string(kMaxDepth) + " levels deep");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // ---- the document's structure ---------------------------------------------------------------
  // Walks `key` from `root`, creating tables; an array of tables is entered at its last element.
  Json& nest(Json& root, const Key& key, size_t at) {
    Json* node = &root;
    for (const auto& part : key) {
      auto it = node->find(part);
      if (it == node->end()) {
        node = &((*node)[part] = Json::object());
        continue;
      }
      node = &*it;
      if (node->is_array() && !node->empty() && node->back().is_object()) node = &node->back();
      if (!node->is_object()) error("'" + join_key(key) + "' is not a table ('" + part + "' already holds a value)", at);
    }
    return *node;
  }

  Key table(Json& root) {
    finalize_pending();
    const size_t at = pos_;
    ++pos_;  // [
    skip_ws();
    Key key = dotted_key();
    skip_ws();
    expect(']', "']' to close the table header");
    Flags* f = flags_.find(key);
    if ((f && f->explicit_nest) || flags_.frozen_at(key)) error("table [" + join_key(key) + "] is defined twice", at);
    flags_.at(key).explicit_nest = true;
    nest(root, key, at);
    return key;
  }

  Key array_table(Json& root) {
    finalize_pending();
    const size_t at = pos_;
    pos_ += 2;  // [[
    skip_ws();
    Key key = dotted_key();
    skip_ws();
    if (!starts_with("]]")) error("expected ']]' to close the array-of-tables header");
    pos_ += 2;
    if (flags_.frozen_at(key)) error("[[" + join_key(key) + "]] cannot extend a value array or inline table", at);
    Key parent(key.begin(), key.end() - 1);
    Json& container = nest(root, parent, at);
    auto it = container.find(key.back());
    if (it == container.end()) {
      container[key.back()] = Json::array();
      it = container.find(key.back());
    } else if (!it->is_array()) {
      error("[[" + join_key(key) + "]]: '" + join_key(key) + "' is already a table or value", at);
    }
    it->push_back(Json::object());
    // A fresh element: its sub-tables may be defined again.
    Flags& f = flags_.at(key);
    f.nested.clear();
    f.explicit_nest = true;
    return key;
  }

  // `key = value` (both the document's lines and an inline table's entries).
  std::pair<Key, Json> key_value_pair() {
    Key key = dotted_key();
    skip_ws();
    expect('=', "'=' after a key");
    skip_ws();
    Json value = parse_value();
    return {std::move(key), std::move(value)};
  }

  void key_value(Json& root, const Key& header) {
    const size_t at = pos_;
    auto [key, value] = key_value_pair();
    Key absolute = header;
    absolute.insert(absolute.end(), key.begin(), key.end());
    if (absolute.size() > kMaxDepth) error("tables nested more than " + std::to_string(kMaxDepth) + " levels deep", at);
    // Dotted keys define their tables: not one a header or an earlier section already defined.
    // Within this section they stay open for more dotted keys (pending until the next header).
    for (size_t i = 1; i < key.size(); ++i) {
      Key prefix(absolute.begin(), absolute.begin() + static_cast<std::ptrdiff_t>(header.size() + i));
      Flags* f = flags_.find(prefix);
      if (f && f->explicit_nest) error("cannot define table '" + join_key(prefix) + "' again with dotted keys", at);
      pending_.push_back(prefix);
    }
    Key parent(absolute.begin(), absolute.end() - 1);
    if (flags_.frozen_at(parent)) error("cannot add '" + join_key(key) + "' to an inline table or value array", at);
    Json& table = nest(root, parent, at);
    if (table.contains(key.back())) error("'" + join_key(absolute) + "' is defined twice", at);
    if (value.is_object() || value.is_array()) flags_.at(absolute).frozen = true;
    table[key.back()] = std::move(value);
  }

  // At a header, tables made by the previous section's dotted keys become defined.
  void finalize_pending() {
    for (const auto& key : pending_) flags_.at(key).explicit_nest = true;
    pending_.clear();
  }

  // ---- values ---------------------------------------------------------------------------------
  Json parse_value() {
    const char c = peek();
    if (at_end()) error("expected a value");
    if (c == '"') {
      if (starts_with("\"\"\"")) return multiline_basic_string();
      return basic_string();
    }
    if (c == '\'') {
      if (starts_with("'''")) return multiline_literal_string();
      return literal_string();
    }
    if (c == '[') return array();
    if (c == '{') return inline_table();
    if (starts_with("true") && !is_bare_key_char(peek(4))) {
      pos_ += 4;
      return true;
    }
    if (starts_with("false") && !is_bare_key_char(peek(5))) {
      pos_ += 5;
      return false;
    }
    return number();
  }

  Json array() {
    DepthGuard guard(*this);
    ++pos_;  // [
    Json out = Json::array();
    while (true) {
      skip_ws_comments_newlines();
      if (accept(']')) return out;
      out.push_back(parse_value());
      skip_ws_comments_newlines();
      if (accept(',')) continue;
      if (accept(']')) return out;
      error("expected ',' or ']' in an array");
    }
  }

  Json inline_table() {
    DepthGuard guard(*this);
    ++pos_;  // {
    Json out = Json::object();
    Flags local;  // the inline table's own definitions
    skip_ws();
    if (accept('}')) return out;
    while (true) {
      skip_ws();
      const size_t at = pos_;
      auto [key, value] = key_value_pair();
      Json* node = &out;
      for (size_t i = 0; i + 1 < key.size(); ++i) {
        Key prefix(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(i + 1));
        if (local.frozen_at(prefix)) error("cannot add '" + join_key(key) + "' to an inline table or value array", at);
        auto it = node->find(key[i]);
        if (it == node->end()) node = &((*node)[key[i]] = Json::object());
        else if (it->is_object()) node = &*it;
        else error("'" + join_key(prefix) + "' is not a table", at);
      }
      if (local.frozen_at(key) || node->contains(key.back())) error("'" + join_key(key) + "' is defined twice", at);
      if (value.is_object() || value.is_array()) local.at(key).frozen = true;
      (*node)[key.back()] = std::move(value);
      skip_ws();
      if (accept(',')) continue;
      if (accept('}')) return out;
      error("expected ',' or '}' in an inline table (it must fit on one line)");
    }
  }

  // Escape after a backslash in a basic string.
  void escape(std::string& out) {
    const size_t at = pos_ - 1;
    const char c = peek();
    ++pos_;
    switch (c) {
      case 'b': out += '\b'; return;
      case 't': out += '\t'; return;
      case 'n': out += '\n'; return;
      case 'f': out += '\f'; return;
      case 'r': out += '\r'; return;
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case 'u':
      case 'U': {
        const int digits = c == 'u' ? 4 : 8;
        char32_t cp = 0;
        for (int i = 0; i < digits; ++i) {
          if (!is_hex(peek())) error(std::string("\\") + c + " needs " + std::to_string(digits) + " hex digits", at);
          cp = cp * 16 + static_cast<char32_t>(std::strtol(std::string(1, peek()).c_str(), nullptr, 16));
          ++pos_;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) error("escape is not a Unicode scalar value", at);
        append_utf8_code_point(out, cp);
        return;
      }
      default:
        error("unknown escape sequence in a string", at);
    }
  }

  void string_char(std::string& out, bool multiline) {
    const auto c = static_cast<unsigned char>(peek());
    if (multiline && c == '\r' && peek(1) == '\n') {  // CRLF inside a string reads as LF (as tomllib)
      out += '\n';
      pos_ += 2;
      return;
    }
    if ((c < 0x20 && c != '\t' && !(multiline && (c == '\n' || (c == '\r' && peek(1) == '\n')))) || c == 0x7F)
      error(c == '\n' ? "unterminated string" : "control character in a string");
    out += static_cast<char>(c);
    ++pos_;
  }

  std::string basic_string() {
    ++pos_;  // "
    std::string out;
    while (true) {
      if (at_end()) error("unterminated string");
      const char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        ++pos_;
        escape(out);
        continue;
      }
      string_char(out, false);
    }
  }

  std::string literal_string() {
    ++pos_;  // '
    std::string out;
    while (true) {
      if (at_end()) error("unterminated string");
      if (peek() == '\'') {
        ++pos_;
        return out;
      }
      string_char(out, false);
    }
  }

  // Closing delimiter of a multi-line string: up to two extra quotes belong to the content.
  bool closes(char quote, std::string& out) {
    const std::string delim(3, quote);
    if (!starts_with(delim)) return false;
    size_t n = 3;
    while (n < 5 && peek(n) == quote) ++n;
    out.append(n - 3, quote);
    pos_ += n;
    return true;
  }

  std::string multiline_basic_string() {
    pos_ += 3;
    newline();  // a newline right after the opening delimiter is trimmed
    std::string out;
    while (true) {
      if (at_end()) error("unterminated multi-line string");
      if (closes('"', out)) return out;
      if (peek() == '\\') {
        // Line-ending backslash: trims the newline and all whitespace/newlines after it.
        size_t look = pos_ + 1;
        while (look < s_.size() && (s_[look] == ' ' || s_[look] == '\t')) ++look;
        if (look < s_.size() && (s_[look] == '\n' || (s_[look] == '\r' && look + 1 < s_.size() && s_[look + 1] == '\n'))) {
          pos_ = look;
          while (true) {
            skip_ws();
            if (!newline()) break;
          }
          continue;
        }
        ++pos_;
        escape(out);
        continue;
      }
      string_char(out, true);
    }
  }

  std::string multiline_literal_string() {
    pos_ += 3;
    newline();
    std::string out;
    while (true) {
      if (at_end()) error("unterminated multi-line string");
      if (closes('\'', out)) return out;
      string_char(out, true);
    }
  }

  // Digits with single underscores between them; returns them without underscores.
  std::string digits(bool (*ok)(char), const char* what) {
    std::string out;
    if (!ok(peek())) error(std::string("expected ") + what);
    while (true) {
      out += peek();
      ++pos_;
      if (peek() == '_') {
        ++pos_;
        if (!ok(peek())) error("'_' must sit between two digits");
      } else if (!ok(peek())) {
        return out;
      }
    }
  }

  Json number() {
    const size_t at = pos_;
    // Dates and times look like numbers at first: 1979-05-27, 07:32:00.
    if (is_digit(peek()) && is_digit(peek(1)) && (peek(2) == ':' || (is_digit(peek(2)) && is_digit(peek(3)) && peek(4) == '-')))
      error("dates and times are not supported in moeforge configs");
    std::string sign;
    if (peek() == '+' || peek() == '-') {
      sign = std::string(1, peek());
      ++pos_;
    }
    if (starts_with("inf") || starts_with("nan")) {
      const bool inf = peek() == 'i';
      pos_ += 3;
      if (is_bare_key_char(peek())) error("invalid value", at);
      const double v = inf ? HUGE_VAL : std::nan("");
      return sign == "-" ? -v : v;
    }
    if (sign.empty() && peek() == '0' && (peek(1) == 'x' || peek(1) == 'o' || peek(1) == 'b')) {
      const char base_char = peek(1);
      pos_ += 2;
      const int base = base_char == 'x' ? 16 : base_char == 'o' ? 8 : 2;
      auto ok = base == 16 ? +[](char c) { return is_hex(c); }
                : base == 8 ? +[](char c) { return c >= '0' && c <= '7'; }
                            : +[](char c) { return c == '0' || c == '1'; };
      std::string d = digits(ok, base == 16 ? "hex digits" : base == 8 ? "octal digits" : "binary digits");
      errno = 0;
      const unsigned long long v = std::strtoull(d.c_str(), nullptr, base);
      if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) error("integer out of the 64-bit range", at);
      finish_value(at);
      return static_cast<int64_t>(v);
    }
    if (!is_digit(peek())) error("expected a value (string, number, boolean, array or inline table)", at);
    std::string integer = digits(is_digit, "digits");
    if (integer.size() > 1 && integer[0] == '0') error("leading zeros are not allowed in a number", at);
    std::string text = sign + integer;
    bool is_float = false;
    if (peek() == '.') {
      ++pos_;
      text += "." + digits(is_digit, "digits after the decimal point");
      is_float = true;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      text += "e";
      if (peek() == '+' || peek() == '-') {
        text += peek();
        ++pos_;
      }
      text += digits(is_digit, "exponent digits");
      is_float = true;
    }
    finish_value(at);
    errno = 0;
    if (is_float) return std::strtod(text.c_str(), nullptr);  // IEEE rounding: 1e999 is inf, as tomllib reads it
    const long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE) error("integer out of the 64-bit range", at);
    return static_cast<int64_t>(v);
  }

  // A number must be followed by a separator, not by more characters ("12ab", "1.2.3").
  void finish_value(size_t at) {
    const char c = peek();
    if (!at_end() && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ',' && c != ']' && c != '}' && c != '#')
      error("invalid number", at);
  }

  std::string_view s_;
  std::string label_;
  size_t pos_ = 0;
  size_t depth_ = 0;
  Flags flags_;
  std::vector<Key> pending_;  // tables made by dotted keys in the current section
};

}  // namespace

nlohmann::json parse_toml(std::string_view text, const std::string& label) { return Parser(text, label).parse(); }

nlohmann::json read_config_file(const std::filesystem::path& path) {
  if (path.extension() != ".toml") return read_json_file(path);
  return parse_toml(read_small_file(path, 64ull << 20, "TOML"), path.string());
}

nlohmann::json read_config_file(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail(what, " '", path.string(), "': no such file (", std::filesystem::absolute(path).lexically_normal().string(), ")");
  return read_config_file(path);
}

}  // namespace moeforge
