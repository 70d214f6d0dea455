#include "model/router.h"

#include <torch/torch.h>

#include "common/error.h"

namespace moeforge::model {

namespace {

// DeepSeek-V3 group limit: keep the `top_groups` groups whose two best scores sum highest.
torch::Tensor mask_to_top_groups(const torch::Tensor& scores_TE, int64_t num_groups, int64_t top_groups) {
  const int64_t tokens = scores_TE.size(0), experts = scores_TE.size(1);
  auto grouped_TGe = scores_TE.view({tokens, num_groups, experts / num_groups});
  int64_t best = std::min<int64_t>(2, experts / num_groups);
  auto group_scores_TG = std::get<0>(grouped_TGe.topk(best, -1)).sum(-1);
  auto keep_TG = std::get<1>(group_scores_TG.topk(top_groups, -1));
  auto group_mask_TG = torch::zeros_like(group_scores_TG).scatter_(1, keep_TG, 1.0);
  auto expert_mask_TE = group_mask_TG.unsqueeze(-1).expand_as(grouped_TGe).reshape({tokens, experts});
  return scores_TE.masked_fill(expert_mask_TE.logical_not(), -std::numeric_limits<float>::infinity());
}

}  // namespace

Routing route(const torch::Tensor& logits, const RouterOptions& options,
              const std::optional<torch::Tensor>& selection_bias) {
  if (logits.dim() != 2) fail("router logits must be [tokens, experts]; got ", logits.dim(), " dims");
  const int64_t experts = logits.size(1);
  if (options.top_k < 1 || options.top_k > experts)
    fail("top-k ", options.top_k, " is outside [1, ", experts, "]");
  auto logits_TE = logits.to(torch::kFloat32);
  Routing routing;
  switch (options.kind) {
    case RouterKind::SoftmaxThenTopK: {
      routing.probs = torch::softmax(logits_TE, -1);  // [T, E]
      auto select_TE = selection_bias ? routing.probs + selection_bias->to(torch::kFloat32) : routing.probs;
      routing.expert_ids = std::get<1>(select_TE.topk(options.top_k, -1));  // [T, K]
      routing.weights = routing.probs.gather(1, routing.expert_ids);       // [T, K]
      break;
    }
    case RouterKind::TopKThenSoftmax: {
      routing.probs = torch::softmax(logits_TE, -1);
      auto select_TE = selection_bias ? logits_TE + selection_bias->to(torch::kFloat32) : logits_TE;
      routing.expert_ids = std::get<1>(select_TE.topk(options.top_k, -1));
      routing.weights = torch::softmax(logits_TE.gather(1, routing.expert_ids), -1);
      break;
    }
    case RouterKind::Sigmoid: {
      routing.probs = torch::sigmoid(logits_TE);
      auto select_TE = selection_bias ? routing.probs + selection_bias->to(torch::kFloat32) : routing.probs;
      if (options.num_groups > 1) {
        if (experts % options.num_groups) fail("num_experts ", experts, " is not divisible by n_group ", options.num_groups);
        select_TE = mask_to_top_groups(select_TE.detach(), options.num_groups, options.top_groups);
      }
      routing.expert_ids = std::get<1>(select_TE.topk(options.top_k, -1));
      routing.weights = routing.probs.gather(1, routing.expert_ids);
      break;
    }
  }
  if (options.renormalize && options.kind != RouterKind::TopKThenSoftmax)
    routing.weights = routing.weights / (routing.weights.sum(-1, true) + (options.kind == RouterKind::Sigmoid ? 1e-20 : 0.0));
  if (options.routed_scaling_factor != 1.0) routing.weights = routing.weights * options.routed_scaling_factor;
  return routing;
}

Routing route_all_to(int64_t num_tokens, int64_t num_experts, int64_t expert, const torch::Device& device) {
  if (expert < 0 || expert >= num_experts) fail("forced expert ", expert, " is outside [0, ", num_experts, ")");
  Routing routing;
  auto options = torch::TensorOptions().device(device);
  routing.expert_ids = torch::full({num_tokens, 1}, expert, options.dtype(torch::kInt64));
  routing.weights = torch::ones({num_tokens, 1}, options.dtype(torch::kFloat32));
  routing.probs = torch::zeros({num_tokens, num_experts}, options.dtype(torch::kFloat32)).index_fill_(1, torch::tensor({expert}, options.dtype(torch::kInt64)), 1.0);
  return routing;
}

}  // namespace moeforge::model
