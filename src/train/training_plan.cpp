// Recipe -> TrainingPlan (see training_plan.h).
#include "train/training_plan.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>

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

namespace {

// The growing selections of a progressive_unfreeze phase (recipe.h ProgressiveUnfreeze).
std::vector<Selection> unfreeze_stages(const Phase& phase, const Selection& full, const std::string& at) {
  const ProgressiveUnfreeze& u = phase.unfreeze;
  // The units, in the order they unfreeze.
  std::vector<std::pair<int64_t, int64_t>> units;  // (layer, expert or -1)
  for (const auto& [name, mask] : full) {
    const model::CanonicalName c = model::parse_canonical_name(name);
    if (c.layer < 0) continue;
    const model::RuntimeTensor* entry = model::find_runtime_tensor(c.local);
    const bool experts = entry && entry->source == model::TensorSource::Experts;
    if (u.experts && !experts) continue;
    if (u.experts)
      for (int64_t e : selected_units(mask)) units.emplace_back(c.layer, e);
    else
      units.emplace_back(c.layer, -1);
  }
  std::sort(units.begin(), units.end());
  units.erase(std::unique(units.begin(), units.end()), units.end());
  if (u.top_down) std::stable_sort(units.begin(), units.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const auto n = static_cast<int64_t>(units.size());
  if (n < u.stages)
    fail(at, ".progressive_unfreeze: ", u.stages, " stages but the selection has ", n, u.experts ? " experts" : " layers",
         " to unfreeze");
  std::vector<Selection> out;
  for (int64_t k = 1; k <= u.stages; ++k) {
    const int64_t take = (k * n + u.stages - 1) / u.stages;
    std::set<std::pair<int64_t, int64_t>> open(units.begin(), units.begin() + take);
    Selection s;
    for (const auto& [name, mask] : full) {
      const model::CanonicalName c = model::parse_canonical_name(name);
      const model::RuntimeTensor* entry = model::find_runtime_tensor(c.local);
      const bool experts = entry && entry->source == model::TensorSource::Experts;
      if (c.layer < 0 || (u.experts && !experts)) {
        s[name] = mask;  // outside the units: every stage
      } else if (u.experts) {
        std::vector<bool> m(mask.size(), false);
        bool any = false;
        for (size_t e = 0; e < mask.size(); ++e)
          if (mask[e] && open.count({c.layer, static_cast<int64_t>(e)})) m[e] = true, any = true;
        if (any) s[name] = m;
      } else if (open.count({c.layer, -1})) {
        s[name] = mask;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

TrainingPlan make_training_plan(const ModelSpec& spec, const nlohmann::json& recipe_json, const std::string& label,
                                const fs::path& model_dir, const fs::path& analysis_plan) {
  TrainingPlan plan;
  plan.recipe = parse_recipe(recipe_json, label);
  NewExperts new_experts;
  const fs::path grow = model_dir / "moeforge_grow.json";
  const bool has_grow = fs::exists(grow);
  if (has_grow) new_experts = parse_grow_record(read_json_file(grow), grow.string());
  SelectorContext ctx;
  ctx.spec = &spec;
  ctx.params = describe_parameters(spec);
  ctx.new_experts = has_grow ? &new_experts : nullptr;
  nlohmann::json analysis;
  if (!analysis_plan.empty()) {
    // The plan must describe this model (same family, layers, experts): checked like grow does.
    check_plan_matches(read_plan(analysis_plan), spec);
    analysis = read_json_file(analysis_plan);
    ctx.analysis_plan = &analysis;
    ctx.analysis_plan_label = analysis_plan.string();
  }
  // Progressive unfreezing: each such phase becomes its stages, with their selections.
  std::vector<Phase> phases;
  std::vector<Selection> selections;
  std::vector<std::string> where;
  for (size_t p = 0; p < plan.recipe.phases.size(); ++p) {
    const Phase& phase = plan.recipe.phases[p];
    const std::string at = label + ": phases[" + std::to_string(p) + "]";
    Selection full = resolve_selection(phase.select, ctx, at + ".select");
    if (phase.unfreeze.stages == 0) {
      phases.push_back(phase);
      selections.push_back(std::move(full));
      where.push_back(at);
      continue;
    }
    auto stages = unfreeze_stages(phase, full, at);
    for (size_t k = 0; k < stages.size(); ++k) {
      Phase stage = phase;
      stage.name = phase.name + ".stage" + std::to_string(k + 1) + "of" + std::to_string(stages.size());
      stage.steps = phase.steps / static_cast<int64_t>(stages.size()) + (static_cast<int64_t>(k) < phase.steps % static_cast<int64_t>(stages.size()) ? 1 : 0);
      stage.unfreeze = {};
      phases.push_back(stage);
      selections.push_back(std::move(stages[k]));
      where.push_back(at + " stage " + std::to_string(k + 1));
    }
  }
  plan.recipe.phases = phases;
  for (size_t p = 0; p < plan.recipe.phases.size(); ++p) {
    const Phase& phase = plan.recipe.phases[p];
    const std::string& at = where[p];
    plan.selections.push_back(std::move(selections[p]));
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
