// Cross-entropy, load-balancing and z-loss (formulas in losses.h; REFERENCE.md section 2).
#include "train/losses.h"

#include <torch/torch.h>

#include <cmath>

namespace moeforge::train {

torch::Tensor real_tokens(const torch::Tensor& mask_BT) {
  const int64_t T = mask_BT.size(1);
  auto pos = torch::arange(T, mask_BT.options().dtype(torch::kInt64)).unsqueeze(0);          // [1, T]
  auto last = torch::where(mask_BT.to(torch::kBool), pos, torch::full_like(pos, -1)).amax(1, true);  // [B, 1]
  return pos <= last;  // [B, T]
}

RouterLosses router_losses(const std::vector<model::LayerRouting>& routing, const torch::Tensor& real_N, int64_t E) {
  RouterLosses out;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  out.lb = torch::zeros({}, opts);
  out.z = torch::zeros({}, opts);
  if (routing.empty()) return out;
  auto real_f = real_N.to(torch::kFloat32).unsqueeze(1);  // [N, 1]
  const double n_real = std::max(1.0, real_f.sum().item<double>());
  for (const auto& layer : routing) {
    const auto& ids_NK = layer.routing.expert_ids;
    const int64_t K = ids_NK.size(1);
    auto real_ids = ids_NK.masked_select(real_N.unsqueeze(1).expand_as(ids_NK));         // [n_real*K]
    auto counts = torch::bincount(real_ids, {}, E).to(torch::kInt64);                      // [E]
    out.counts.push_back(counts);
    auto f_E = counts.to(torch::kFloat32) / (n_real * static_cast<double>(K));            // fraction of picks
    auto P_E = (layer.routing.probs * real_f).sum(0) / n_real;                            // mean prob (grad)
    auto lb = static_cast<double>(E) * (f_E * P_E).sum();
    out.lb_per_layer.push_back(lb.item<double>());
    out.lb = out.lb + lb;
    auto lse_N = torch::logsumexp(layer.logits.to(torch::kFloat32), -1);                 // [N]
    out.z = out.z + (lse_N.pow(2) * real_f.squeeze(1)).sum() / n_real;
  }
  const double L = static_cast<double>(routing.size());
  out.lb = out.lb / L;
  out.z = out.z / L;
  return out;
}

double balance(const torch::Tensor& counts_E) {
  auto c = counts_E.to(torch::kFloat64);
  const double total = c.sum().item<double>();
  const int64_t E = c.size(0);
  if (total <= 0 || E < 2) return 1.0;
  auto p = c / total;
  const double h = -(p * torch::where(p > 0, p.log(), torch::zeros_like(p))).sum().item<double>();
  return h / std::log(static_cast<double>(E));
}

}  // namespace moeforge::train
