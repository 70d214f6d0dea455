// Typed access to tokenizer.json fields that throws moeforge::Error naming the file and the
// JSON path ("tokenizer.json: model.vocab: expected an object") instead of nlohmann exceptions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "common/error.h"

namespace moeforge::tokenizer {

using Json = nlohmann::json;

// Where a JSON value sits: the file's label plus the path inside it.
struct JsonPath {
  std::string label;
  std::string path;
  JsonPath child(const std::string& key) const {
    return {label, path.empty() ? key : path + "." + key};
  }
  JsonPath index(size_t i) const { return {label, cat(path, "[", i, "]")}; }
  // Guards the recursion over nested Sequences against hostile files.
  void check_depth() const {
    if (path.size() > 1000) fail("Sequences are nested too deeply");
  }
  template <typename... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    moeforge::fail(label, ": ", path.empty() ? "" : path + ": ", std::forward<Parts>(parts)...);
  }
};

inline bool has_value(const Json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && !obj.at(key).is_null();
}

inline const Json& require(const Json& obj, const char* key, const JsonPath& at) {
  if (!obj.is_object()) at.fail("expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) at.fail("missing '", key, "'");
  return *it;
}

inline std::string get_string(const Json& obj, const char* key, const JsonPath& at) {
  const Json& v = require(obj, key, at);
  if (!v.is_string()) at.child(key).fail("expected a string");
  return v.get<std::string>();
}

inline std::string get_string_or(const Json& obj, const char* key, const std::string& fallback,
                                 const JsonPath& at) {
  if (!has_value(obj, key)) return fallback;
  return get_string(obj, key, at);
}

inline bool get_bool_or(const Json& obj, const char* key, bool fallback, const JsonPath& at) {
  if (!has_value(obj, key)) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_boolean()) at.child(key).fail("expected true or false");
  return v.get<bool>();
}

inline int64_t as_int(const Json& v, const JsonPath& at) {
  if (!v.is_number_integer()) at.fail("expected an integer");
  return v.get<int64_t>();
}

inline int32_t as_token_id(const Json& v, const JsonPath& at) {
  int64_t id = as_int(v, at);
  if (id < 0 || id > INT32_MAX) at.fail("token id ", id, " is out of range");
  return static_cast<int32_t>(id);
}

inline const Json& get_array(const Json& obj, const char* key, const JsonPath& at) {
  const Json& v = require(obj, key, at);
  if (!v.is_array()) at.child(key).fail("expected an array");
  return v;
}

inline std::string type_of(const Json& obj, const JsonPath& at) { return get_string(obj, "type", at); }

}  // namespace moeforge::tokenizer
