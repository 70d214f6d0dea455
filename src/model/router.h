// Expert routing rules: turn router logits into (expert ids, combine weights) per token.
// One function parameterised by gating rule, renormalisation and a selection-only bias, as in
// llama.cpp's MoE builder: the bias changes which experts are picked, never the combine weights.
#pragma once

#include <torch/types.h>

#include <optional>

#include "arch/model_spec.h"

namespace moeforge::model {

// The routing rules are arch's RouterKind (SoftmaxThenTopK: Mixtral, Qwen*-MoE, OLMoE;
// TopKThenSoftmax: GPT-OSS; Sigmoid: DeepSeek-V3 with selection bias and group-limited top-k).
using moeforge::RouterKind;

struct RouterOptions {
  RouterKind kind = RouterKind::SoftmaxThenTopK;
  int64_t top_k = 2;
  bool renormalize = true;             // divide the k weights by their sum (norm_topk_prob)
  double routed_scaling_factor = 1.0;  // DeepSeek multiplies the combine weights by this
  int64_t num_groups = 1;              // DeepSeek-V3 n_group (1 = no group limit)
  int64_t top_groups = 1;              // DeepSeek-V3 topk_group
};

struct Routing {
  torch::Tensor expert_ids;  // [T, K] int64
  torch::Tensor weights;     // [T, K] float32, differentiable w.r.t. the logits
  torch::Tensor probs;       // [T, E] float32 routing probabilities (softmax or sigmoid), for aux losses
};

// `logits` [T, E]. `selection_bias` [E] (optional) is added to the scores only to choose experts
// (DeepSeek-V3 e_score_correction_bias, aux-loss-free balancing, force-route).
Routing route(const torch::Tensor& logits, const RouterOptions& options,
              const std::optional<torch::Tensor>& selection_bias = std::nullopt);

// Every token goes to `expert` with weight 1 (single-expert inference, --force-expert L:E).
Routing route_all_to(int64_t num_tokens, int64_t num_experts, int64_t expert, const torch::Device& device);

}  // namespace moeforge::model
