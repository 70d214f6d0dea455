// Training losses: next-token cross-entropy under the loss mask, Switch load-balancing loss per
// MoE layer (all top-k picks counted, gradient into the router through the mean probabilities) and
// router z-loss; plus per-layer expert load for metrics and aux-loss-free balancing.
#pragma once

#include <torch/types.h>

#include <vector>

#include "model/transformer.h"

namespace moeforge::train {

// Cross-entropy is computed with the language-model head, in chunks: train/distill.h chunked_head_loss.

// Real (non-padding) tokens: every position up to each row's last target. [B, T] bool.
torch::Tensor real_tokens(const torch::Tensor& mask_BT);

struct RouterLosses {
  torch::Tensor lb;   // scalar: mean over MoE layers of E * sum_i f_i P_i (1 at perfect balance)
  torch::Tensor z;    // scalar: mean over MoE layers of mean_t logsumexp(logits_t)^2
  std::vector<double> lb_per_layer;
  std::vector<torch::Tensor> counts;  // per MoE layer [E] int64 top-k picks over real tokens
};

// `real_N` [N] bool over the flattened B*T tokens. Layers with a forced expert still count.
RouterLosses router_losses(const std::vector<model::LayerRouting>& routing, const torch::Tensor& real_N, int64_t num_experts);

// H(p) / log E of the normalised pick counts (1 = perfectly even).
double balance(const torch::Tensor& counts_E);

}  // namespace moeforge::train
