// Checkpoint keys (run_checkpoint.h): "model.<canonical>", "leaf.<leaf>", "opt.<slot>", "rng.<device>",
// "aux_free.<layer>", "sfa.<leaf>" (SFA anchors).
#include "train/training_state.h"

#include <torch/torch.h>

#include "common/error.h"
#include "common/strings.h"
#include "train/rng_state.h"
#include "train/training_plan.h"

namespace moeforge::train {

namespace {

std::map<std::string, torch::Tensor*> parameters_by_name(model::ModelWeights& weights) {
  std::map<std::string, torch::Tensor*> by_name;
  model::for_each_parameter(weights, [&](const std::string& name, torch::Tensor& t) { by_name[name] = &t; });
  return by_name;
}

}  // namespace

const torch::Tensor& TrainingState::full_precision(const std::string& name, const torch::Tensor& model_tensor) const {
  auto m = masters.find(name);
  return m != masters.end() ? m->second : model_tensor;
}

void TrainingState::save(const std::filesystem::path& run_dir, int64_t keep, model::ModelWeights& weights,
                         const torch::Device& device, const TrainableSet* phase_set, const Optimizer* phase_optimizer,
                         int shard_ranks) const {
  RunState s = run;
  if (phase_set) merge_selection(s.changed, phase_set->changed());
  const auto by_name = parameters_by_name(weights);
  for (const auto& [name, mask] : s.changed) s.tensors["model." + name] = full_precision(name, *by_name.at(name)).detach();
  if (phase_set) {
    for (const auto& leaf : phase_set->leaves())
      if (!by_name.count(leaf.name)) s.tensors["leaf." + leaf.name] = leaf.tensor.detach();
  }
  if (phase_optimizer) {
    for (const auto& [slot, t] : phase_optimizer->state()) s.tensors["opt." + slot] = t;
    s.optimizer_steps = phase_optimizer->steps();
  }
  for (const auto& [key, t] : rng_state(device)) s.tensors[key] = t;
  for (const auto& [l, b] : aux_bias) s.tensors["aux_free." + std::to_string(l)] = b;
  for (const auto& [leaf, t] : sfa_anchor) s.tensors["sfa." + leaf] = t;
  save_checkpoint(run_dir, s, keep, shard_ranks);
}

void TrainingState::restore(const RunState& cp, model::ModelWeights& weights, const torch::Device& device,
                            const std::string& where) {
  run.phase = cp.phase;
  run.step_in_phase = cp.step_in_phase;
  run.global_step = cp.global_step;
  run.data_position = cp.data_position;
  run.bad_streak = cp.bad_streak;
  // Changed tensors of the interrupted phase are restored here; that phase adds them again at its end.
  run.changed = cp.changed;
  const auto by_name = parameters_by_name(weights);
  torch::NoGradGuard no_grad;
  for (const auto& [key, t] : cp.tensors) {
    if (starts_with(key, "model.")) {
      auto it = by_name.find(key.substr(6));
      if (it == by_name.end() || it->second->sizes() != t.sizes())
        fail(where, ": checkpoint tensor '", key, "' does not match the model");
      model::make_writable(weights, *it->second);  // a frozen tensor may be a read-only view of the file
      it->second->copy_(t);
      if (it->second->scalar_type() != torch::kFloat32) masters[it->first] = t.to(device, torch::kFloat32);
    } else if (starts_with(key, "aux_free.")) {
      aux_bias[std::stoll(key.substr(9))] = t.to(device);
    } else if (starts_with(key, "sfa.")) {
      sfa_anchor[key.substr(4)] = t.to(device);
    }
  }
  if (!cp.tensors.count("rng.cpu")) fail(where, ": checkpoint has no rng.cpu state");
  set_rng_state(device, cp.tensors);
}

void TrainingState::restore_phase(const RunState& cp, TrainableSet& set, Optimizer& optimizer, const torch::Device& device,
                                  const std::string& where) {
  torch::NoGradGuard no_grad;
  for (auto& leaf : set.leaves()) {
    auto found = cp.tensors.find("leaf." + leaf.name);
    if (found != cp.tensors.end()) leaf.tensor.copy_(found->second);
  }
  std::map<std::string, torch::Tensor> opt_state;
  for (const auto& [key, t] : cp.tensors)
    if (starts_with(key, "opt.")) opt_state[key.substr(4)] = t.to(device);
  optimizer.load_state(opt_state, cp.optimizer_steps, where);
  set_rng_state(device, cp.tensors);
}

}  // namespace moeforge::train
