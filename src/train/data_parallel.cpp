#include "train/data_parallel.h"

namespace moeforge::train {

void all_reduce_gradients(dist::World& world, std::vector<Leaf>& leaves) {
  if (!world.distributed()) return;
  std::vector<torch::Tensor> grads;
  for (auto& leaf : leaves) {
    if (!leaf.tensor.grad().defined()) leaf.tensor.mutable_grad() = torch::zeros_like(leaf.tensor);
    grads.push_back(leaf.tensor.mutable_grad());
  }
  world.all_reduce_sum(grads);
}

void all_reduce_step_stats(dist::World& world, StepStats& stats) {
  if (!world.distributed()) return;
  std::vector<double> scalars = {stats.ce_sum, stats.lb, stats.z, static_cast<double>(stats.tokens), stats.kd_sum, stats.kl_sum,
                                 static_cast<double>(stats.agree), static_cast<double>(stats.targets), stats.router_kd};
  scalars.insert(scalars.end(), stats.lb_per_layer.begin(), stats.lb_per_layer.end());
  scalars.insert(scalars.end(), stats.router_kd_per_layer.begin(), stats.router_kd_per_layer.end());
  std::vector<torch::Tensor> bucket{torch::tensor(scalars, torch::kFloat64)};
  for (const auto& c : stats.counts) bucket.push_back(c.to(torch::kFloat64));
  world.all_reduce_sum(bucket);
  auto v = bucket[0];
  const double* x = v.data_ptr<double>();
  stats.ce_sum = x[0], stats.lb = x[1], stats.z = x[2], stats.tokens = static_cast<int64_t>(x[3]);
  stats.kd_sum = x[4], stats.kl_sum = x[5], stats.agree = static_cast<int64_t>(x[6]), stats.targets = static_cast<int64_t>(x[7]);
  stats.router_kd = x[8];
  size_t at = 9;
  for (auto& l : stats.lb_per_layer) l = x[at++];
  for (auto& l : stats.router_kd_per_layer) l = x[at++];
  for (size_t i = 0; i < stats.counts.size(); ++i) stats.counts[i] = bucket[i + 1].round().to(stats.counts[i].device(), stats.counts[i].scalar_type());
}

}  // namespace moeforge::train
