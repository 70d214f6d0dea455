// Dense -> MoE targets: which families upcycle/merge can write, the output config.json built from
// the dense source's, and the check that the target represents the source's non-FFN function.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"

namespace moeforge::surgery {

struct MoeTargetOptions {
  std::string family = "mixtral";   // mixtral | qwen3_moe | qwen2_moe | olmoe
  int64_t num_experts = 8;
  int64_t top_k = 2;
  int64_t expert_width = 0;         // moe_intermediate_size (F, or F/G for granular)
  bool renormalize = true;          // norm_topk_prob (Mixtral always renormalises)
  std::vector<int64_t> moe_layers;  // layers that become MoE (others keep their dense MLP)
  int64_t shared_expert_width = 0;  // qwen2_moe: native shared expert (0 = none)
};

// The output config: the source's keys (attention, RoPE, windows, tokens) kept, the family and the
// MoE keys replaced. Throws naming the flag when the target cannot express the request
// (--layers subset on Mixtral/OLMoE, --no-renormalize on Mixtral, a GPT-Neo source, ...).
nlohmann::json moe_target_config(const nlohmann::json& dense_config, const ModelSpec& dense, const MoeTargetOptions& options);

// Differences between the source's and the output's non-FFN function, one line each. Fatal ones
// (biases, norms, windows, RoPE that the target cannot carry) throw naming both families and the
// field; q/k norms the target adds (OLMoE, Qwen3-MoE from a source without them) are returned as
// warnings: those weights are created as ones, which changes attention.
std::vector<std::string> check_target(const ModelSpec& dense, const ModelSpec& out);

}  // namespace moeforge::surgery
