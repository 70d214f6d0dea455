// ConfigReader: typed reads with messages naming file, key and family.
#include "arch/config_reader.h"

#include <cmath>

#include "common/error.h"

namespace moeforge {

ConfigReader::ConfigReader(const nlohmann::json& config, std::string label, std::string family)
    : config_(config), label_(std::move(label)), family_(std::move(family)) {
  if (!config_.is_object()) fail(label_, ": expected a JSON object (", family_, ")");
}

const nlohmann::json* ConfigReader::find(const std::string& key) const {
  auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool ConfigReader::has(const std::string& key) const { return find(key) != nullptr; }

std::string ConfigReader::first_present(std::initializer_list<const char*> keys) const {
  for (const char* key : keys)
    if (has(key)) return key;
  return "";
}

void ConfigReader::fail_key(const std::string& key, const std::string& what) const {
  fail(label_, ": key '", key, "' ", what, " (", family_, ")");
}

int64_t ConfigReader::as_int(const nlohmann::json& value, const std::string& key) const {
  if (value.is_number_integer()) return value.get<int64_t>();
  // Some configs write integral values as floats (4096.0); accept exact integers only.
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  fail_key(key, cat("must be an integer, got ", value.dump()));
}

double ConfigReader::as_double(const nlohmann::json& value, const std::string& key) const {
  if (value.is_number()) return value.get<double>();
  fail_key(key, cat("must be a number, got ", value.dump()));
}

int64_t ConfigReader::required_int(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (!value) fail(label_, ": missing required key '", key, "' (", family_, ")");
  return as_int(*value, key);
}

int64_t ConfigReader::get_int(const std::string& key, int64_t fallback) const {
  const nlohmann::json* value = find(key);
  return value ? as_int(*value, key) : fallback;
}

std::optional<int64_t> ConfigReader::optional_int(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  return as_int(*value, key);
}

double ConfigReader::get_double(const std::string& key, double fallback) const {
  const nlohmann::json* value = find(key);
  return value ? as_double(*value, key) : fallback;
}

std::optional<double> ConfigReader::optional_double(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (!value) return std::nullopt;
  return as_double(*value, key);
}

bool ConfigReader::get_bool(const std::string& key, bool fallback) const {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  if (!value->is_boolean()) fail_key(key, cat("must be true or false, got ", value->dump()));
  return value->get<bool>();
}

std::string ConfigReader::get_string(const std::string& key, const std::string& fallback) const {
  const nlohmann::json* value = find(key);
  if (!value) return fallback;
  if (!value->is_string()) fail_key(key, cat("must be a string, got ", value->dump()));
  return value->get<std::string>();
}

std::vector<int64_t> ConfigReader::get_int_list(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (!value) return {};
  if (!value->is_array()) return {as_int(*value, key)};
  std::vector<int64_t> out;
  for (const auto& item : *value) out.push_back(as_int(item, key));
  return out;
}

std::vector<std::string> ConfigReader::get_string_list(const std::string& key) const {
  const nlohmann::json* value = find(key);
  if (!value) return {};
  if (!value->is_array()) fail_key(key, cat("must be a list of strings, got ", value->dump()));
  std::vector<std::string> out;
  for (const auto& item : *value) {
    if (!item.is_string()) fail_key(key, cat("must be a list of strings, got ", value->dump()));
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace moeforge
