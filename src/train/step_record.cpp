#include "train/step_record.h"

#include <torch/torch.h>

#include <algorithm>

namespace moeforge::train {

void StepStats::add(double ce_sum_micro, int64_t tokens_micro, const RouterLosses& rl, int64_t accum) {
  ce_sum += ce_sum_micro;
  lb += rl.lb.item<double>() / static_cast<double>(accum);
  z += rl.z.item<double>() / static_cast<double>(accum);
  tokens += tokens_micro;
  if (counts.empty()) {
    counts = rl.counts;
    lb_per_layer = rl.lb_per_layer;
    return;
  }
  for (size_t i = 0; i < rl.counts.size(); ++i) {
    counts[i] = counts[i] + rl.counts[i];
    lb_per_layer[i] += rl.lb_per_layer[i];
  }
}

nlohmann::json step_record(const StepScalars& s, const StepStats& stats, const std::vector<torch::Tensor>& routers_start,
                           const std::vector<torch::Tensor>& routers_now) {
  nlohmann::json rec = {{"step", s.global_step}, {"phase", s.phase},   {"phase_step", s.phase_step},
                        {"loss", s.loss},        {"ce", s.ce},         {"lb", stats.lb},
                        {"z", stats.z},          {"lr", s.lr},         {"grad_norm", s.grad_norm},
                        {"tokens", stats.tokens}, {"tokens_per_s", s.tokens_per_s}};
  if (s.skipped) rec["skipped"] = true;
  if (s.comm_s >= 0) rec["comm_s"] = s.comm_s;
  if (stats.expert_picks > 0)  // a token goes once to each rank owning one of its picks
    rec["expert_exchange"] = {{"picks", stats.expert_picks}, {"token_rows", stats.expert_token_rows}};
  if (stats.distill) {
    const double n = static_cast<double>(std::max<int64_t>(stats.targets, 1));
    rec["kd"] = stats.kd_sum / n;           // the token KD term at the phase's T (times T^2)
    rec["kl"] = stats.kl_sum / n;           // KL(teacher || student) at T = 1
    rec["agreement"] = static_cast<double>(stats.agree) / n;  // student argmax == teacher argmax
    rec["router_kd"] = stats.router_kd;
    if (!stats.router_kd_per_layer.empty()) rec["router_kd_per_layer"] = stats.router_kd_per_layer;
  }
  if (stats.counts.empty()) return rec;
  nlohmann::json load = nlohmann::json::array(), bal = nlohmann::json::array(), drift = nlohmann::json::array();
  nlohmann::json drift_abs = nlohmann::json::array();
  double bal_sum = 0, drift_sum = 0, drift_abs_sum = 0;
  for (size_t i = 0; i < stats.counts.size(); ++i) {
    auto c = stats.counts[i].to(torch::kCPU, torch::kFloat64);
    auto frac = c / std::max(1.0, c.sum().item<double>());
    load.push_back(std::vector<double>(frac.data_ptr<double>(), frac.data_ptr<double>() + frac.numel()));
    const double b = balance(stats.counts[i]);
    bal.push_back(b);
    bal_sum += b;
    const auto now = routers_now[i].detach().to(torch::kFloat32);
    const auto& start = routers_start[i];
    // Relative to the larger norm, so an upcycled router that starts at zero reads 1, not 1e12.
    const double scale = std::max({start.norm().item<double>(), now.norm().item<double>(), 1e-12});
    const double change = (now - start).norm().item<double>();
    drift.push_back(change / scale);
    drift_sum += change / scale;
    drift_abs.push_back(change);  // what the relative form hides for a router that started at zero
    drift_abs_sum += change;
  }
  const double n = static_cast<double>(stats.counts.size());
  rec["balance"] = bal_sum / n;
  rec["router_drift"] = drift_sum / n;
  rec["balance_per_layer"] = bal;
  rec["router_drift_per_layer"] = drift;
  rec["router_drift_abs"] = drift_abs_sum / n;
  rec["router_drift_abs_per_layer"] = drift_abs;
  rec["lb_per_layer"] = stats.lb_per_layer;
  rec["load"] = load;
  return rec;
}

}  // namespace moeforge::train
