// Plan files: how `analyze` (stats) talks to `grow`, `add-shared-expert` and `train`; below every
// job that reads or writes them. Schema, version 1:
//   {
//     "version": 1,
//     "model": {"model_type": "gpt_oss", "num_layers": 24, "num_experts": 32, "hidden_size": 2880},
//     "clone": {"3": [5, 7], "10": [5, 1]},    // grow: MoE layer -> source experts, appended in order
//     "usage": {"3": [0.031, ...]},             // per layer, E values: share of top-k picks (optional)
//     "importance": {"3": [0.12, ...]}          // per layer, E values: NEXUS PCA importance (optional)
//   }
// Layer keys are decimal strings. "model" is the identity a plan is valid for: a plan whose identity
// differs from the model it is applied to is rejected naming the field. Unknown top-level keys are
// ignored (later versions may add some); an unknown "version" is rejected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"

namespace moeforge {

struct ModelIdentity {
  std::string model_type;
  int64_t num_layers = 0, num_experts = 0, hidden_size = 0;
};

struct SurgeryPlan {
  int version = 1;
  ModelIdentity model;
  std::map<int64_t, std::vector<int64_t>> clone;
  std::map<int64_t, std::vector<double>> usage, importance;
  std::string source;  // file name, for messages
};

ModelIdentity identity_of(const ModelSpec& spec);
nlohmann::json identity_json(const ModelIdentity& identity);

// Parses and validates the schema; throws "<file>: <what>" on defects.
SurgeryPlan read_plan(const std::filesystem::path& file);
SurgeryPlan parse_plan(const nlohmann::json& root, const std::string& label);
// Throws "<plan>: written for a model with num_experts 32, but <config> has 8" on a mismatch, and
// checks every layer/expert index the plan names against the spec.
void check_plan_matches(const SurgeryPlan& plan, const ModelSpec& spec);

}  // namespace moeforge
