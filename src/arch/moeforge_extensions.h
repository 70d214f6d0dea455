// moeforge's documented extensions to Hugging Face configs, for features a family lacks natively
// (a shared expert on Mixtral/Qwen3-MoE/OLMoE/GPT-OSS; a selection-only router bias anywhere).
//
// config.json keys (read by every MoE family; ignored by transformers):
//   "moeforge_shared_expert_intermediate_size": int > 0   one always-on shared expert per MoE layer
//   "moeforge_shared_expert_gate": "fixed" | "learned" | "sigmoid"   (default "fixed")
//       fixed:   out = routed + moeforge_shared_expert_scale * shared(x)
//       learned: out = routed + s * shared(x), s = tensor mlp.shared_expert_scale [1]
//       sigmoid: out = routed + sigmoid(mlp.shared_expert_gate.weight [1, H] . x) * shared(x)
//   "moeforge_shared_expert_scale": float   (fixed gate; default 0.2)
//   "moeforge_selection_bias": true   per MoE layer tensor mlp.moeforge_selection_bias [E] added to
//       the router's selection scores only (probabilities for softmax routers, logits for GPT-OSS);
//       it never enters the combine weights (written by `moeforge grow --router-bias`).
// Tensor names (per MoE layer l) used when the family's own table lacks the role:
//   model.layers.{l}.mlp.shared_expert.{gate,up,down}_proj.weight   [Fs, H], [Fs, H], [H, Fs]
//   model.layers.{l}.mlp.shared_expert_gate.weight [1, H]; model.layers.{l}.mlp.shared_expert_scale [1]
//   model.layers.{l}.mlp.moeforge_selection_bias [E]
#pragma once

#include <string>

#include "arch/config_reader.h"
#include "arch/model_spec.h"
#include "arch/tensor_role.h"

namespace moeforge {

// Applies the keys above to a parsed MoE spec (no-op for dense models and absent keys). A family
// with a native shared expert (Qwen2-MoE) rejects the shared-expert keys.
void apply_moeforge_extensions(const ConfigReader& config, ModelSpec& spec);

// The extension's name template for `role`, or nullptr when the role has none.
const char* extension_tensor_template(TensorRole role);

}  // namespace moeforge
