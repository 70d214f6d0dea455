// `moeforge train --list-params`: what each phase's selectors pick (declared in trainer.h).
#include <torch/torch.h>

#include <algorithm>
#include <sstream>

#include "arch/family_adapter.h"
#include "arch/model_spec.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"
#include "model/memory_plan.h"
#include "model/tensor_table.h"
#include "train/trainable.h"
#include "train/trainer.h"
#include "train/training_memory.h"
#include "train/training_plan.h"

namespace moeforge::train {

namespace fs = std::filesystem;

std::string list_params(const fs::path& model_dir, const nlohmann::json& recipe_json, const std::string& label,
                        const fs::path& analysis_plan, bool dequantize, const DataParallelShape& data_parallel) {
  const int ranks = data_parallel.ranks, zero_stage = data_parallel.zero_stage;
  const auto store = CheckpointStore::open(model_dir);
  const ModelSpec spec = load_model_spec(*store);
  TrainingPlan plan = make_training_plan(spec, recipe_json, label, model_dir, analysis_plan);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : describe_parameters(spec)) shapes[p.name] = p.shape;
  std::ostringstream out;
  for (size_t p = 0; p < plan.recipe.phases.size(); ++p) {
    const Phase& phase = plan.recipe.phases[p];
    int64_t total = 0;
    std::ostringstream lines;
    for (const auto& [name, mask] : plan.selections[p]) {
      const auto& shape = shapes.at(name);
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      const model::RuntimeTensor* entry = model::find_runtime_tensor(model::parse_canonical_name(name).local);
      const bool stacked = entry && entry->source == model::TensorSource::Experts;
      const auto units = selected_units(mask);
      const int64_t count = stacked ? numel / shape[0] * static_cast<int64_t>(units.size()) : numel;
      const int64_t dims = static_cast<int64_t>(shape.size()) - (stacked ? 1 : 0);
      const bool lora = phase.method == Method::Lora && is_lora_target(name, dims, phase.lora);
      int64_t trained = count;
      if (lora) {
        const int64_t out_dim = shape[shape.size() - 2], in_dim = shape.back();
        trained = phase.lora.rank * (out_dim + in_dim) * (stacked ? static_cast<int64_t>(units.size()) : 1);
      }
      total += trained;
      lines << "  " << name << " " << shape_to_string(shape);
      if (stacked && !selects_all(mask)) {
        std::vector<std::string> es;
        for (int64_t e : units) es.push_back(std::to_string(e));
        lines << " experts " << join(es, ",");
      }
      lines << (lora ? "  lora r" + std::to_string(phase.lora.rank) : "  full") << "  " << trained << " params\n";
    }
    out << "phase " << p << " '" << phase.name << "' (" << to_string(phase.method) << ", " << phase.steps << " steps): "
        << plan.selections[p].size() << " tensors, " << total << " trainable parameters\n" << lines.str();
    if (!plan.force[p].empty()) {
      std::vector<std::string> fr;
      for (const auto& [l, es] : plan.force[p])
        for (int64_t e : es) fr.push_back(std::to_string(l) + ":" + std::to_string(e));
      out << "  force_route " << join(fr, ",") << " (+" << phase.routing.force_route_bias << ")\n";
    }
  }
  // The run's memory: the model as train loads it (precision, packed MXFP4 unless --dequantize) plus the plan's state.
  const bool online_teacher = std::any_of(plan.recipe.phases.begin(), plan.recipe.phases.end(), [](const Phase& phase) {
    return phase.losses.distill.enabled && phase.losses.distill.teacher_cache.empty();
  });
  model::MemoryPlan memory = model::plan_model_memory(spec, *store, plan.recipe.precision == "bf16" ? DType::BF16 : DType::F32,
                                                      /*cpu=*/true, /*map_frozen=*/true, !dequantize,
                                                      zero_stage >= 3 ? ranks : 1);
  const TrainingMemory training = plan_training_memory(spec, plan, !dequantize, online_teacher, data_parallel);
  if (ranks > 1)
    out << "each of " << ranks << " ranks (--zero " << zero_stage << "; ranks on one machine share its memory, the mapped weights once):\n";
  memory.work = training.total();
  memory.work_what = describe(training);
  out << model::describe(memory, model_dir.string()) << "\n";
  return out.str();
}

}  // namespace moeforge::train
