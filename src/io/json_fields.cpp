// The strict JSON config reader (see json_fields.h).
#include "io/json_fields.h"

#include <cmath>

#include "common/error.h"

namespace moeforge {

JsonFields::JsonFields(const nlohmann::json& object, std::string label, std::string path, std::string root)
    : object_(object), label_(std::move(label)), path_(std::move(path)), root_(std::move(root)) {
  if (!object_.is_object()) error(path_, "must be an object");
}

void JsonFields::error(const std::string& field, const std::string& what) const {
  fail(label_, ": ", field.empty() ? root_ : field, ": ", what);
}

bool JsonFields::has(const std::string& key) {
  seen_.insert(key);
  return object_.contains(key) && !object_.at(key).is_null();
}

const nlohmann::json& JsonFields::raw(const std::string& key) {
  seen_.insert(key);
  return object_.at(key);
}

double JsonFields::number(const std::string& key, double def) {
  if (!has(key)) return def;
  const nlohmann::json& v = object_.at(key);
  if (!v.is_number()) bad(key, "must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x)) bad(key, "must be finite");
  return x;
}

double JsonFields::number(const std::string& key, double def, double min, bool min_exclusive) {
  const double x = number(key, def);
  if (has(key) && (min_exclusive ? !(x > min) : !(x >= min))) bad(key, cat("must be ", min_exclusive ? "> " : ">= ", min));
  return x;
}

int64_t JsonFields::integer(const std::string& key, int64_t def) {
  if (!has(key)) return def;
  const nlohmann::json& v = object_.at(key);
  if (!v.is_number_integer()) bad(key, "must be an integer");
  return v.get<int64_t>();
}

int64_t JsonFields::integer(const std::string& key, int64_t def, int64_t min) {
  const int64_t x = integer(key, def);
  if (has(key) && x < min) bad(key, cat("must be >= ", min));
  return x;
}

uint64_t JsonFields::unsigned_integer(const std::string& key, uint64_t def) {
  if (!has(key)) return def;
  const nlohmann::json& v = object_.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < 0) bad(key, "must be a non-negative integer");
  return v.get<uint64_t>();
}

bool JsonFields::boolean(const std::string& key, bool def) {
  if (!has(key)) return def;
  if (!object_.at(key).is_boolean()) bad(key, "must be true or false");
  return object_.at(key).get<bool>();
}

std::string JsonFields::string(const std::string& key, const std::string& def) {
  if (!has(key)) return def;
  if (!object_.at(key).is_string()) bad(key, "must be a string");
  return object_.at(key).get<std::string>();
}

std::string JsonFields::choice(const std::string& key, const std::string& def, const std::vector<std::string>& allowed) {
  const std::string v = string(key, def);
  std::string list;
  for (const auto& a : allowed) {
    if (v == a) return v;
    list += (list.empty() ? "" : ", ") + a;
  }
  bad(key, "'" + v + "' is not one of " + list);
}

JsonFields JsonFields::object(const std::string& key) {
  static const nlohmann::json empty = nlohmann::json::object();
  return JsonFields(has(key) ? object_.at(key) : empty, label_, at(key), root_);
}

void JsonFields::finish() const {
  for (auto it = object_.begin(); it != object_.end(); ++it)
    if (!seen_.count(it.key())) bad(it.key(), "unknown field");
}

}  // namespace moeforge
