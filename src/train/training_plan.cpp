// Recipe -> TrainingPlan (see training_plan.h).
#include "train/training_plan.h"

#include <torch/torch.h>

#include <algorithm>

#include "arch/plan.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "model/tensor_table.h"
#include "train/trainable.h"

namespace moeforge::train {

namespace fs = std::filesystem;

void merge_selection(Selection& acc, const Selection& more) {
  for (const auto& [name, mask] : more) {
    auto& m = acc[name];
    if (m.size() != mask.size()) m.assign(mask.size(), false);
    for (size_t i = 0; i < mask.size(); ++i) m[i] = m[i] || mask[i];
  }
}

TrainingPlan make_training_plan(model::Transformer& model, const nlohmann::json& recipe_json, const std::string& label,
                                const fs::path& model_dir, const fs::path& analysis_plan) {
  TrainingPlan plan;
  plan.recipe = parse_recipe(recipe_json, label);
  const ModelSpec& spec = model.spec();
  NewExperts new_experts;
  const fs::path grow = model_dir / "moeforge_grow.json";
  const bool has_grow = fs::exists(grow);
  if (has_grow) new_experts = parse_grow_record(read_json_file(grow), grow.string());
  SelectorContext ctx;
  ctx.spec = &spec;
  ctx.params = describe_parameters(model.weights(), spec);
  ctx.new_experts = has_grow ? &new_experts : nullptr;
  nlohmann::json analysis;
  if (!analysis_plan.empty()) {
    // The plan must describe this model (same family, layers, experts): checked like grow does.
    check_plan_matches(read_plan(analysis_plan), spec);
    analysis = read_json_file(analysis_plan);
    ctx.analysis_plan = &analysis;
    ctx.analysis_plan_label = analysis_plan.string();
  }
  for (size_t p = 0; p < plan.recipe.phases.size(); ++p) {
    const Phase& phase = plan.recipe.phases[p];
    const std::string at = label + ": phases[" + std::to_string(p) + "]";
    plan.selections.push_back(resolve_selection(phase.select, ctx, at + ".select"));
    std::map<std::string, Selection> groups;
    for (size_t g = 0; g < phase.optimizer.groups.size(); ++g)
      groups[phase.optimizer.groups[g].select] = resolve_selection(
          {phase.optimizer.groups[g].select}, ctx, at + ".optimizer.groups[" + std::to_string(g) + "].select");
    plan.groups.push_back(groups);
    std::map<int64_t, std::vector<int64_t>> force;
    const std::string& fr = phase.routing.force_route;
    if (!fr.empty()) {
      if (spec.moe.num_experts == 0) fail(at, ".routing.force_route: the model has no MoE layers");
      if (fr == "selected") {
        for (const auto& [name, mask] : plan.selections.back()) {
          const model::CanonicalName canonical = model::parse_canonical_name(name);
          const model::RuntimeTensor* entry = model::find_runtime_tensor(canonical.local);
          if (!entry || entry->source != model::TensorSource::Experts) continue;
          const int64_t layer = canonical.layer;
          auto& list = force[layer];
          for (int64_t e : selected_units(mask))
            if (std::find(list.begin(), list.end(), e) == list.end()) list.push_back(e);
        }
        if (force.empty()) fail(at, ".routing.force_route: \"selected\" but the phase selects no experts");
      } else {
        force = parse_layer_experts(fr, spec, at + ".routing.force_route");
      }
    }
    plan.force.push_back(force);
  }
  return plan;
}

}  // namespace moeforge::train
