// JsonFields: the one strict reader of JSON config objects (recipes, pipeline jobs). It tracks the
// field path for messages ("recipe.json: phases[1].optimizer.lr: must be > 0"), checks types and
// ranges, and finish() rejects every key nobody asked for: a typo must never fall back to a default.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace moeforge {

class JsonFields {
 public:
  // `label` names the document (its file); `path` is this object's field path ("" at the top,
  // where messages say `root` instead: "recipe", "the config").
  JsonFields(const nlohmann::json& object, std::string label, std::string path, std::string root = "recipe");

  [[noreturn]] void error(const std::string& field, const std::string& what) const;
  [[noreturn]] void bad(const std::string& key, const std::string& what) const { error(at(key), what); }
  void check(bool ok, const std::string& key, const std::string& what) const {
    if (!ok) bad(key, what);
  }
  const std::string& label() const { return label_; }
  std::string at(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // Marks `key` as read; true when it is present and not null.
  bool has(const std::string& key);
  const nlohmann::json& raw(const std::string& key);  // present keys only

  // Typed reads: `def` when the key is absent or null.
  double number(const std::string& key, double def);  // finite
  double number(const std::string& key, double def, double min, bool min_exclusive = false);
  int64_t integer(const std::string& key, int64_t def);
  int64_t integer(const std::string& key, int64_t def, int64_t min);
  uint64_t unsigned_integer(const std::string& key, uint64_t def);
  bool boolean(const std::string& key, bool def);
  std::string string(const std::string& key, const std::string& def);
  std::string choice(const std::string& key, const std::string& def, const std::vector<std::string>& allowed);
  // A nested object (an empty one when absent), with this reader's label and root.
  JsonFields object(const std::string& key);

  // Call last: every key must have been asked for.
  void finish() const;

 private:
  const nlohmann::json& object_;
  std::string label_, path_, root_;
  std::set<std::string> seen_;
};

}  // namespace moeforge
