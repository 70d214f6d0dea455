// Typed, explicit-optionality access to a config.json: every read names the key, every failure
// names the file, the key and the family ("<dir>/config.json: missing required key 'hidden_size'
// (mixtral)"). A key present with value null counts as absent (transformers writes "head_dim": null).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace moeforge {

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& config, std::string label, std::string family);

  const std::string& label() const { return label_; }
  const std::string& family() const { return family_; }
  const nlohmann::json& json() const { return config_; }

  bool has(const std::string& key) const;           // present and not null
  const nlohmann::json* find(const std::string& key) const;  // nullptr when absent or null
  // The first of `keys` that is present (aliases such as num_experts / num_local_experts), or "".
  std::string first_present(std::initializer_list<const char*> keys) const;

  int64_t required_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  std::optional<int64_t> optional_int(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  std::optional<double> optional_double(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // An int or a list of ints (eos_token_id); empty when absent.
  std::vector<int64_t> get_int_list(const std::string& key) const;
  std::vector<std::string> get_string_list(const std::string& key) const;

  // Helpers for values found elsewhere (nested dicts such as rope_parameters).
  int64_t as_int(const nlohmann::json& value, const std::string& key) const;
  double as_double(const nlohmann::json& value, const std::string& key) const;

  [[noreturn]] void fail_key(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json& config_;
  std::string label_;
  std::string family_;
};

}  // namespace moeforge
