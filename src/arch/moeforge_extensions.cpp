// Parsing of moeforge's config-key extensions (shared expert, selection-only bias); see the header.
#include "arch/moeforge_extensions.h"

#include "common/error.h"

namespace moeforge {

void apply_moeforge_extensions(const ConfigReader& config, ModelSpec& spec) {
  if (!spec.has_moe()) return;
  MoeSpec& moe = spec.moe;
  if (config.get_bool("moeforge_selection_bias", false)) moe.score_correction_bias = true;
  if (!config.has("moeforge_shared_expert_intermediate_size")) return;
  if (moe.num_shared_experts > 0)
    config.fail_key("moeforge_shared_expert_intermediate_size", "is set but the family already has a shared expert");
  const int64_t width = config.required_int("moeforge_shared_expert_intermediate_size");
  if (width <= 0) config.fail_key("moeforge_shared_expert_intermediate_size", "must be positive");
  moe.num_shared_experts = 1;
  moe.shared_intermediate_size = width;
  const std::string gate = config.get_string("moeforge_shared_expert_gate", "fixed");
  if (gate == "fixed") moe.shared_gate = SharedGateKind::FixedScale;
  else if (gate == "learned") moe.shared_gate = SharedGateKind::LearnedScale;
  else if (gate == "sigmoid") moe.shared_gate = SharedGateKind::SigmoidGate;
  else config.fail_key("moeforge_shared_expert_gate", cat("is '", gate, "'; expected fixed, learned or sigmoid"));
  moe.shared_scale = config.get_double("moeforge_shared_expert_scale", 0.2);
}

const char* extension_tensor_template(TensorRole role) {
  switch (role) {
    case TensorRole::SharedGate: return "model.layers.{l}.mlp.shared_expert.gate_proj.weight";
    case TensorRole::SharedUp: return "model.layers.{l}.mlp.shared_expert.up_proj.weight";
    case TensorRole::SharedDown: return "model.layers.{l}.mlp.shared_expert.down_proj.weight";
    case TensorRole::SharedExpertGate: return "model.layers.{l}.mlp.shared_expert_gate.weight";
    case TensorRole::SharedScale: return "model.layers.{l}.mlp.shared_expert_scale";
    case TensorRole::ScoreCorrectionBias: return "model.layers.{l}.mlp.moeforge_selection_bias";
    default: return nullptr;
  }
}

}  // namespace moeforge
