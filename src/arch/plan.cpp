// Plan file parsing and identity checks (schema in plan.h).
#include "arch/plan.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

int64_t layer_key(const std::string& key, const std::string& where) {
  try {
    size_t used = 0;
    int64_t l = std::stoll(key, &used);
    if (used == key.size() && l >= 0) return l;
  } catch (const std::exception&) {
  }
  fail(where, ": key '", key, "' is not a layer index");
}

template <typename T>
std::map<int64_t, std::vector<T>> per_layer(const nlohmann::json& root, const char* field, const std::string& label) {
  std::map<int64_t, std::vector<T>> out;
  if (!root.contains(field)) return out;
  const std::string where = label + ": \"" + field + "\"";
  const auto& obj = root[field];
  if (!obj.is_object()) fail(where, " must be an object of layer -> list");
  for (const auto& [key, list] : obj.items()) {
    if (!list.is_array()) fail(where, "[\"", key, "\"] must be a list");
    std::vector<T> values;
    for (const auto& v : list) {
      if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) fail(where, "[\"", key, "\"] must hold integers");
      } else if (!v.is_number()) {
        fail(where, "[\"", key, "\"] must hold numbers");
      }
      values.push_back(v.template get<T>());
    }
    out[layer_key(key, where)] = std::move(values);
  }
  return out;
}

}  // namespace

ModelIdentity identity_of(const ModelSpec& spec) {
  return ModelIdentity{spec.model_type, spec.num_layers, spec.moe.num_experts, spec.hidden_size};
}

nlohmann::json identity_json(const ModelIdentity& m) {
  return {{"model_type", m.model_type}, {"num_layers", m.num_layers}, {"num_experts", m.num_experts},
          {"hidden_size", m.hidden_size}};
}

SurgeryPlan parse_plan(const nlohmann::json& root, const std::string& label) {
  if (!root.is_object()) fail(label, ": a plan is a JSON object");
  SurgeryPlan plan;
  plan.source = label;
  if (!root.contains("version") || !root["version"].is_number_integer()) fail(label, ": missing integer \"version\"");
  plan.version = root["version"].get<int>();
  if (plan.version != 1) fail(label, ": plan version ", plan.version, " is not supported (this moeforge reads version 1)");
  if (!root.contains("model") || !root["model"].is_object()) fail(label, ": missing \"model\" identity object");
  const auto& m = root["model"];
  auto need_int = [&](const char* key) -> int64_t {
    if (!m.contains(key) || !m[key].is_number_integer()) fail(label, ": \"model\" needs integer \"", key, "\"");
    return m[key].get<int64_t>();
  };
  if (!m.contains("model_type") || !m["model_type"].is_string()) fail(label, ": \"model\" needs string \"model_type\"");
  plan.model.model_type = m["model_type"].get<std::string>();
  plan.model.num_layers = need_int("num_layers");
  plan.model.num_experts = need_int("num_experts");
  plan.model.hidden_size = need_int("hidden_size");
  plan.clone = per_layer<int64_t>(root, "clone", label);
  plan.usage = per_layer<double>(root, "usage", label);
  plan.importance = per_layer<double>(root, "importance", label);
  return plan;
}

SurgeryPlan read_plan(const std::filesystem::path& file) { return parse_plan(read_json_file(file), file.string()); }

void check_plan_matches(const SurgeryPlan& plan, const ModelSpec& spec) {
  const ModelIdentity want = identity_of(spec);
  auto mismatch = [&](const char* field, const std::string& planned, const std::string& actual) {
    fail(plan.source, ": written for a model with ", field, " ", planned, ", but ", spec.source, " has ", actual,
         "; this plan is for a different model");
  };
  if (plan.model.model_type != want.model_type) mismatch("model_type", plan.model.model_type, want.model_type);
  if (plan.model.num_layers != want.num_layers) mismatch("num_layers", std::to_string(plan.model.num_layers), std::to_string(want.num_layers));
  if (plan.model.num_experts != want.num_experts) mismatch("num_experts", std::to_string(plan.model.num_experts), std::to_string(want.num_experts));
  if (plan.model.hidden_size != want.hidden_size) mismatch("hidden_size", std::to_string(plan.model.hidden_size), std::to_string(want.hidden_size));
  auto check_layer = [&](int64_t l, const char* field) {
    if (l >= spec.num_layers || !spec.is_moe[l])
      fail(plan.source, ": \"", field, "\" names layer ", l, ", which is not a MoE layer of ", spec.source);
  };
  for (const auto& [l, experts] : plan.clone) {
    check_layer(l, "clone");
    for (int64_t e : experts)
      if (e < 0 || e >= spec.moe.num_experts)
        fail(plan.source, ": \"clone\" layer ", l, " names expert ", e, "; the model has experts 0..", spec.moe.num_experts - 1);
  }
  for (const auto* field : {&plan.usage, &plan.importance})
    for (const auto& [l, values] : *field) {
      check_layer(l, field == &plan.usage ? "usage" : "importance");
      if (static_cast<int64_t>(values.size()) != spec.moe.num_experts)
        fail(plan.source, ": layer ", l, " has ", values.size(), " values; the model has ", spec.moe.num_experts, " experts");
    }
}

}  // namespace moeforge
