// Expert ablation loss deltas via a selection-only bias (see loss_delta.h).
#include "stats/loss_delta.h"

#include <torch/torch.h>

#include <iostream>

#include "common/error.h"
#include "common/progress.h"

namespace moeforge::stats {
namespace {

struct Batch {
  torch::Tensor ids_BT, mask_BT;  // int64 [B, T], float [B, T] (targets)
};

// Sum of target cross-entropies over the sample.
double total_loss(const model::Transformer& model, const std::vector<Batch>& batches, const model::ForwardOptions& fwd) {
  double sum = 0;
  for (const auto& b : batches) {
    auto logits_BTV = model.forward(b.ids_BT, fwd).logits;                               // [B, T, V]
    auto logp_BTV = torch::log_softmax(logits_BTV.narrow(1, 0, logits_BTV.size(1) - 1), -1);  // predicts t+1
    auto targets_BT = b.ids_BT.narrow(1, 1, b.ids_BT.size(1) - 1);
    auto nll_BT = -logp_BTV.gather(-1, targets_BT.unsqueeze(-1)).squeeze(-1);            // [B, T-1]
    sum += (nll_BT * b.mask_BT.narrow(1, 1, b.mask_BT.size(1) - 1)).sum().item<double>();
  }
  return sum;
}

}  // namespace

LossDeltaResult measure_loss_delta(const model::Transformer& model, const std::vector<LossSample>& sample,
                                   const LossDeltaOptions& options) {
  torch::NoGradGuard no_grad;
  const ModelSpec& spec = model.spec();
  const int64_t E = spec.moe.num_experts, K = spec.moe.top_k;
  if (K >= E) fail("--loss-delta: every expert is picked for every token (top_k ", K, " of ", E, " experts); nothing to ablate");
  LossDeltaResult result;
  // Batches of equal-length rows (padding rows with mask 0 where lengths differ).
  std::vector<Batch> batches;
  for (size_t i = 0; i < sample.size(); i += static_cast<size_t>(options.batch_size)) {
    const size_t end = std::min(sample.size(), i + static_cast<size_t>(options.batch_size));
    int64_t T = 0;
    for (size_t j = i; j < end; ++j) T = std::max<int64_t>(T, static_cast<int64_t>(sample[j].ids.size()));
    if (T < 2) continue;
    auto ids = torch::zeros({static_cast<int64_t>(end - i), T}, torch::kInt64);
    auto mask = torch::zeros({static_cast<int64_t>(end - i), T}, torch::kFloat);
    for (size_t j = i; j < end; ++j) {
      const auto& s = sample[j];
      for (size_t t = 0; t < s.ids.size(); ++t) {
        ids[j - i][t] = s.ids[t];
        mask[j - i][t] = s.loss_mask.empty() || s.loss_mask[t] ? 1.0f : 0.0f;
      }
      mask[j - i][0] = 0.0f;  // nothing predicts the first token
    }
    result.targets += static_cast<int64_t>(mask.sum().item<double>());
    batches.push_back({ids.to(model.device()), mask.to(model.device())});
  }
  if (result.targets == 0) fail("--loss-delta: the sample has no target tokens");
  const double n = static_cast<double>(result.targets);
  result.base_loss = total_loss(model, batches, {}) / n;
  std::vector<int64_t> moe_layers;
  for (int64_t l = 0; l < spec.num_layers; ++l)
    if (spec.is_moe[l]) moe_layers.push_back(l);
  const int64_t passes = static_cast<int64_t>(moe_layers.size()) * E;
  int64_t done = 0;
  Progress progress("stats: loss delta", passes, "ablations", options.progress);
  for (int64_t l : moe_layers) {
    std::vector<double> deltas(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) {
      model::ForwardOptions fwd;
      auto bias = torch::zeros({E}, torch::TensorOptions().dtype(torch::kFloat).device(model.device()));
      bias[e] = -1e9f;
      fwd.selection_bias[l] = bias;
      deltas[static_cast<size_t>(e)] = total_loss(model, batches, fwd) / n - result.base_loss;
      progress.update(++done);
    }
    result.delta.push_back(std::move(deltas));
  }
  progress.finish();
  return result;
}

}  // namespace moeforge::stats
