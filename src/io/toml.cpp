// TOML documents read with toml++ (Debian's libtomlplusplus) and converted to nlohmann::json.
// toml++ enforces TOML 1.0's grammar and redefinition rules; this file only maps its values and
// its errors onto moeforge's conventions (no dates; "FILE:LINE:COLUMN: what" messages).
#include "io/toml.h"

#include <toml++/toml.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge {

namespace {

using Json = nlohmann::json;

[[noreturn]] void fail_at(const std::string& label, const toml::source_position& at, std::string_view what) {
  throw Error(label + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " + std::string(what));
}

Json to_json(const toml::node& node, const std::string& label) {
  switch (node.type()) {
    case toml::node_type::table: {
      Json out = Json::object();
      for (auto&& [key, value] : *node.as_table()) out[std::string(key.str())] = to_json(value, label);
      return out;
    }
    case toml::node_type::array: {
      Json out = Json::array();
      for (auto&& value : *node.as_array()) out.push_back(to_json(value, label));
      return out;
    }
    case toml::node_type::string: return node.as_string()->get();
    case toml::node_type::integer: return node.as_integer()->get();
    case toml::node_type::floating_point: return node.as_floating_point()->get();
    case toml::node_type::boolean: return node.as_boolean()->get();
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      fail_at(label, node.source().begin, "dates and times are not supported in moeforge configs");
    default: fail_at(label, node.source().begin, "unsupported TOML value");
  }
}

// toml++'s wording for the two cases our users see most, in the words of our other readers.
std::string describe(std::string_view description) {
  const std::string text(description);
  if (text.find("not representable") != std::string::npos || text.find("out of range") != std::string::npos)
    return "integer out of the 64-bit range (" + text + ")";
  return text;
}

constexpr size_t kMaxKeyParts = 128;

// toml++ nests one table per key part and recurses over them: a key of 10^5 parts overflows the
// stack. Refuse a dotted key with more than kMaxKeyParts parts before toml++ sees it. A lexical
// scan: outside strings and comments, the dots in one run of key characters, spaces and quoted
// keys (a float has one; a separator such as '=', ',', '[' ends the run).
void check_key_parts(std::string_view text, const std::string& label) {
  size_t line = 1, line_start = 0, dots = 0;
  auto is_key_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line, line_start = i + 1, dots = 0;
    } else if (c == '#') {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      const bool multiline = text.substr(i, 3) == std::string(3, c);
      const std::string_view close = multiline ? std::string_view(c == '"' ? "\"\"\"" : "'''") : std::string_view(&text[i], 1);
      i += multiline ? 3 : 1;
      while (i < text.size() && text.substr(i, close.size()) != close) {
        if (c == '"' && text[i] == '\\') ++i;  // an escape: the next character cannot close
        if (i < text.size() && text[i] == '\n') ++line, line_start = i + 1;
        if (!multiline && i < text.size() && text[i] == '\n') break;  // unterminated: toml++ reports it
        ++i;
      }
      i += close.size() - 1;
      if (multiline)  // up to two quotes just before the delimiter belong to the string
        for (int extra = 0; extra < 2 && i + 1 < text.size() && text[i + 1] == c; ++extra) ++i;
    } else if (c == '.') {
      if (++dots >= kMaxKeyParts)
        fail(label, ":", line, ":", i - line_start + 1, ": a key with more than ", kMaxKeyParts, " parts");
    } else if (!is_key_char(c) && c != ' ' && c != '\t') {
      dots = 0;
    }
  }
}

// toml++ refuses a float literal beyond the double range, where TOML (and tomllib) read it as
// +-inf, the IEEE rounding. For that error: the byte range of the literal that ends just before
// `at` (toml++ counts columns in code points), when it really overflows.
std::optional<std::pair<size_t, size_t>> overflowing_float(std::string_view text, const toml::parse_error& e) {
  if (e.description().find("floating-point") == std::string_view::npos) return std::nullopt;
  size_t pos = 0;
  for (size_t line = 1; line < e.source().begin.line && pos < text.size(); ++pos)
    if (text[pos] == '\n') ++line;
  for (size_t column = 1; column < e.source().begin.column && pos < text.size(); ++column) {
    ++pos;
    while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;  // continuation bytes
  }
  size_t start = pos;
  while (start > 0 && std::string_view("0123456789eE._+-").find(text[start - 1]) != std::string_view::npos) --start;
  std::string digits;
  for (size_t i = start; i < pos; ++i)
    if (text[i] != '_') digits += text[i];
  if (digits.empty() || !std::isinf(std::strtod(digits.c_str(), nullptr))) return std::nullopt;
  return std::make_pair(start, pos);
}

}  // namespace

nlohmann::json parse_toml(std::string_view text, const std::string& label) {
  check_key_parts(text, label);
  std::string document(text);
  for (;;) {
    try {
      return to_json(toml::parse(document, label), label);
    } catch (const toml::parse_error& e) {
      if (auto literal = overflowing_float(document, e)) {  // rewrite it as the infinity it denotes, parse again
        const char sign = document[literal->first];
        document.replace(literal->first, literal->second - literal->first,
                         sign == '-' ? "-inf" : sign == '+' ? "+inf" : "inf");
        continue;
      }
      fail_at(label, e.source().begin, describe(e.description()));
    }
  }
}

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
