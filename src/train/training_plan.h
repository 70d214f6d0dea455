// What a recipe trains, resolved against the model before the first step: per phase the selected
// tensors (and experts), the optimiser groups' selections and the forced routing. Built once by the
// trainer and by `train --list-params`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "train/recipe.h"
#include "train/selectors.h"

namespace moeforge::train {

struct TrainingPlan {
  Recipe recipe;
  std::vector<Selection> selections;                           // per phase
  std::vector<std::map<std::string, Selection>> groups;        // per phase: group select -> selection
  std::vector<std::map<int64_t, std::vector<int64_t>>> force;  // per phase: layer -> experts
};

// Parses the recipe (`label` names it in errors) and resolves every phase's selectors against the
// model's spec (no weights needed: the plan comes before loading); reads the grow record beside the
// model (new_experts) and the analyze plan (experts=plan:esft) when given.
TrainingPlan make_training_plan(const ModelSpec& spec, const nlohmann::json& recipe, const std::string& label,
                                const std::filesystem::path& model_dir, const std::filesystem::path& analysis_plan);

// acc |= more, tensor by tensor and expert by expert.
void merge_selection(Selection& acc, const Selection& more);

}  // namespace moeforge::train
