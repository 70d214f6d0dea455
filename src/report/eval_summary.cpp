// eval JSON -> metric rows (see eval_summary.h).
#include "report/eval_summary.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge::report {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

std::optional<double> number(const Json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_number()) return j[key].get<double>();
  return std::nullopt;
}

bool is_result(const Json& j) { return j.is_object() && j.contains("loss") && j["loss"].is_number(); }

EvalTable table(const Json& j, const std::string& name) {
  EvalTable t;
  t.name = name;
  if (j.contains("model") && j["model"].is_string()) t.model = j["model"].get<std::string>();
  const Json base = j.contains("baseline") && j["baseline"].is_object() ? j["baseline"] : Json::object();
  if (base.contains("model") && base["model"].is_string()) t.baseline_model = base["model"].get<std::string>();
  t.rows.push_back({"loss (nats/token)", number(j, "loss"), number(base, "loss")});
  t.rows.push_back({"perplexity", number(j, "perplexity"), number(base, "perplexity")});
  if (auto v = number(base, "mean_kl")) t.rows.push_back({"mean KL(baseline || model)", v, std::nullopt});
  if (auto v = number(j, "balance_score")) t.rows.push_back({"balance score", v, std::nullopt});
  if (auto v = number(j, "balanced_perplexity")) t.rows.push_back({"balanced perplexity", v, std::nullopt});
  if (auto v = number(j, "tokens")) t.rows.push_back({"tokens scored", v, std::nullopt});
  if (j.contains("domains") && j["domains"].is_object())
    for (auto it = j["domains"].begin(); it != j["domains"].end(); ++it)
      if (auto v = number(it.value(), "loss")) t.rows.push_back({"loss [" + it.key() + "]", v, std::nullopt});
  return t;
}

}  // namespace

std::vector<EvalTable> read_eval_tables(const fs::path& file) {
  const std::string label = file.string();
  const Json root = read_json_file(file);
  if (is_result(root)) return {table(root, label)};
  std::vector<EvalTable> tables;
  if (root.is_object() && root.contains("models") && root["models"].is_array()) {  // `moeforge pipeline` eval.json
    for (size_t i = 0; i < root["models"].size(); ++i) {
      const Json& m = root["models"][i];
      if (!is_result(m)) fail(label, ": models[", i, "] has no numeric \"loss\"");
      tables.push_back(table(m, label + " [" + (m.contains("label") && m["label"].is_string() ? m["label"].get<std::string>() : std::to_string(i)) + "]"));
      if (root.contains("data") && root["data"].is_string())
        tables.back().note = "data " + root["data"].get<std::string>() + ", split " + root.value("split", std::string("?")) +
                             (root.contains("blocks") && root["blocks"].is_number() ? ", " + root["blocks"].dump() + " blocks" : "");
    }
  } else if (root.is_object()) {
    for (auto it = root.begin(); it != root.end(); ++it)
      if (is_result(it.value())) tables.push_back(table(it.value(), label + " [" + it.key() + "]"));
  }
  if (tables.empty())
    fail(label, ": not a moeforge eval result (no numeric \"loss\" at the top, in \"models\"[] or in a member object)");
  return tables;
}

}  // namespace moeforge::report
