// YAML -> JSON over libyaml's event parser (see yaml.h).
#include "io/yaml.h"

#include <yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "common/error.h"

namespace moeforge {
namespace {

using Json = nlohmann::json;

// YAML 1.2 core schema for a plain scalar.
Json plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  auto all_of = [&](size_t from, auto pred) {
    if (from >= s.size()) return false;
    for (size_t i = from; i < s.size(); ++i)
      if (!pred(s[i])) return false;
    return true;
  };
  const size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (all_of(sign, [](char c) { return c >= '0' && c <= '9'; })) {
    errno = 0;
    const long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == 0) return v;
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    const bool hex = s[1] == 'x';
    if (all_of(2, [hex](char c) { return (c >= '0' && c <= '7') || (hex && std::isxdigit(static_cast<unsigned char>(c))); })) {
      errno = 0;
      const long long v = std::strtoll(s.c_str() + 2, nullptr, hex ? 16 : 8);
      if (errno == 0) return v;
    }
  }
  const std::string body = s.substr(sign);
  if (body == ".inf" || body == ".Inf" || body == ".INF")
    return (s[0] == '-' ? -1.0 : 1.0) * std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = sign, digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  bool number = digits > 0;
  if (number && i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp;
    number = exp > 0;
  }
  if (number && i == s.size()) return std::strtod(s.c_str(), nullptr);
  return s;
}

class Builder {
 public:
  Builder(yaml_parser_t& parser, const std::string& label) : parser_(parser), label_(label) {}

  Json document() {
    expect(YAML_STREAM_START_EVENT);
    yaml_event_t e = next();
    if (e.type == YAML_STREAM_END_EVENT) {
      yaml_event_delete(&e);
      return nullptr;  // an empty file
    }
    if (e.type != YAML_DOCUMENT_START_EVENT) fail_at(e, "expected a document");
    yaml_event_delete(&e);
    Json root = node(next());
    expect(YAML_DOCUMENT_END_EVENT);
    yaml_event_t end = next();
    if (end.type != YAML_STREAM_END_EVENT) fail_at(end, "more than one document; give one");
    yaml_event_delete(&end);
    return root;
  }

 private:
  yaml_event_t next() {
    yaml_event_t e;
    if (!yaml_parser_parse(&parser_, &e))
      fail(label_, ":", parser_.problem_mark.line + 1, ":", parser_.problem_mark.column + 1, ": ",
           parser_.problem ? parser_.problem : "invalid YAML", parser_.context ? std::string(" ") + parser_.context : "");
    return e;
  }
  void expect(yaml_event_type_t type) {
    yaml_event_t e = next();
    const bool ok = e.type == type;
    if (!ok) fail_at(e, "unexpected YAML structure");
    yaml_event_delete(&e);
  }
  [[noreturn]] void fail_at(yaml_event_t& e, const std::string& what) {
    const auto line = e.start_mark.line + 1, column = e.start_mark.column + 1;
    yaml_event_delete(&e);
    fail(label_, ":", line, ":", column, ": ", what);
  }
  void check_tag(yaml_event_t& e, const unsigned char* tag) {
    if (!tag) return;
    const std::string t(reinterpret_cast<const char*>(tag));
    static const char* known[] = {"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                                  "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
                                  "tag:yaml.org,2002:seq", "!"};
    for (const char* k : known)
      if (t == k) return;
    fail_at(e, "unsupported YAML tag '" + t + "'");
  }
  void remember(const unsigned char* anchor, const Json& value) {
    if (anchor) anchors_[reinterpret_cast<const char*>(anchor)] = value;
  }

  // Builds the value that starts with `e` (consumes its events; frees `e`).
  Json node(yaml_event_t e) {
    switch (e.type) {
      case YAML_ALIAS_EVENT: {
        const std::string name(reinterpret_cast<const char*>(e.data.alias.anchor));
        auto it = anchors_.find(name);
        if (it == anchors_.end()) fail_at(e, "unknown alias '*" + name + "'");
        yaml_event_delete(&e);
        return it->second;
      }
      case YAML_SCALAR_EVENT: {
        check_tag(e, e.data.scalar.tag);
        const std::string text(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
        const std::string tag = e.data.scalar.tag ? reinterpret_cast<const char*>(e.data.scalar.tag) : "";
        const bool plain = e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && tag != "tag:yaml.org,2002:str" && tag != "!";
        Json v = plain ? plain_scalar(text) : Json(text);
        remember(e.data.scalar.anchor, v);
        yaml_event_delete(&e);
        return v;
      }
      case YAML_SEQUENCE_START_EVENT: {
        check_tag(e, e.data.sequence_start.tag);
        std::string anchor = e.data.sequence_start.anchor ? reinterpret_cast<const char*>(e.data.sequence_start.anchor) : "";
        yaml_event_delete(&e);
        Json out = Json::array();
        for (yaml_event_t item = next(); item.type != YAML_SEQUENCE_END_EVENT; item = next()) out.push_back(node(item));
        if (!anchor.empty()) anchors_[anchor] = out;
        return out;
      }
      case YAML_MAPPING_START_EVENT: {
        check_tag(e, e.data.mapping_start.tag);
        std::string anchor = e.data.mapping_start.anchor ? reinterpret_cast<const char*>(e.data.mapping_start.anchor) : "";
        yaml_event_delete(&e);
        Json out = Json::object();
        for (yaml_event_t key = next(); key.type != YAML_MAPPING_END_EVENT; key = next()) {
          if (key.type != YAML_SCALAR_EVENT && key.type != YAML_ALIAS_EVENT) fail_at(key, "a mapping key must be a scalar");
          const auto line = key.start_mark.line + 1, column = key.start_mark.column + 1;
          Json k = node(key);
          const std::string name = k.is_string() ? k.get<std::string>() : k.dump();
          if (out.contains(name)) fail(label_, ":", line, ":", column, ": duplicate key '", name, "'");
          out[name] = node(next());
        }
        if (!anchor.empty()) anchors_[anchor] = out;
        return out;
      }
      default:
        fail_at(e, "unexpected YAML structure");
    }
  }

  yaml_parser_t& parser_;
  std::string label_;
  std::map<std::string, Json> anchors_;
};

}  // namespace

Json parse_yaml(std::string_view text, const std::string& label) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) fail(label, ": cannot start the YAML parser");
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  try {
    Json out = Builder(parser, label).document();
    yaml_parser_delete(&parser);
    return out;
  } catch (...) {
    yaml_parser_delete(&parser);
    throw;
  }
}

Json read_yaml_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot read (", std::filesystem::exists(path) ? "permission denied?" : "no such file", ")");
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_yaml(buf.str(), path.string());
}

}  // namespace moeforge
