#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <iostream>

#include "common/strings.h"

namespace moeforge::train {

torch::Tensor& grad_or_zeros(Leaf& leaf) {
  if (!leaf.tensor.grad().defined()) leaf.tensor.mutable_grad() = torch::zeros_like(leaf.tensor);
  return leaf.tensor.mutable_grad();
}

void all_reduce_gradients(dist::World& world, std::vector<Leaf>& leaves) {
  if (!world.distributed()) return;
  std::vector<torch::Tensor> grads;
  for (auto& leaf : leaves) grads.push_back(grad_or_zeros(leaf));
  world.all_reduce_sum(grads);
}

void all_reduce_step_stats(dist::World& world, StepStats& stats) {
  if (!world.distributed()) return;
  std::vector<double> scalars = {stats.ce_sum, stats.lb, stats.z, static_cast<double>(stats.tokens), stats.kd_sum, stats.kl_sum,
                                 static_cast<double>(stats.agree), static_cast<double>(stats.targets), stats.router_kd,
                                 static_cast<double>(stats.expert_picks), static_cast<double>(stats.expert_token_rows)};
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
  stats.expert_picks = static_cast<int64_t>(x[9]), stats.expert_token_rows = static_cast<int64_t>(x[10]);
  size_t at = 11;
  for (auto& l : stats.lb_per_layer) l = x[at++];
  for (auto& l : stats.router_kd_per_layer) l = x[at++];
  for (size_t i = 0; i < stats.counts.size(); ++i) stats.counts[i] = bucket[i + 1].round().to(stats.counts[i].device(), stats.counts[i].scalar_type());
}

ShardedOptimizer::ShardedOptimizer(dist::World& world, const std::vector<Leaf>& leaves, int zero_stage)
    : world_(world), sharded_(zero_stage >= 1 && world.distributed()), grads_sharded_(zero_stage >= 2 && world.distributed()),
      owner_(leaves.size(), world.rank()) {
  if (!sharded_) return;
  std::vector<int64_t> load(world.size(), 0);
  for (size_t i = 0; i < leaves.size(); ++i) {  // the largest first would balance better; order keeps it obvious
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[i] = r;
    load[r] += leaves[i].tensor.numel();
  }
  if (world.is_main()) {
    int64_t total = 0, own = 0;
    for (size_t i = 0; i < leaves.size(); ++i) total += leaves[i].tensor.numel(), own += owns(i) ? leaves[i].tensor.numel() : 0;
    std::cerr << "moeforge: ZeRO-" << (grads_sharded_ ? 2 : 1) << ": rank 0 keeps the optimiser state"
              << (grads_sharded_ ? " and gradients" : "") << " of " << std::count(owner_.begin(), owner_.end(), 0) << " of "
              << leaves.size() << " trained tensors (" << own << " of " << total << " parameters)\n";
  }
}

void ShardedOptimizer::reduce_gradients(std::vector<Leaf>& leaves) {
  if (!grads_sharded_) return all_reduce_gradients(world_, leaves);
  for (int r = 0; r < world_.size(); ++r) {
    std::vector<torch::Tensor> grads;
    for (size_t i = 0; i < leaves.size(); ++i)
      if (owner_[i] == r) grads.push_back(grad_or_zeros(leaves[i]));
    world_.reduce_sum(grads, r);
  }
  for (size_t i = 0; i < leaves.size(); ++i)
    if (!owns(i)) leaves[i].tensor.mutable_grad() = torch::Tensor();  // this rank's share of the memory is freed
}

double ShardedOptimizer::clip_gradients(std::vector<Leaf>& leaves, double clip) {
  if (!grads_sharded_) return train::clip_gradients(leaves, clip);
  std::vector<Leaf> mine = own_leaves(leaves);  // the only gradients this rank holds
  std::vector<torch::Tensor> sum{torch::tensor({squared_gradient_norm(mine)}, torch::kFloat64)};
  world_.all_reduce_sum(sum);
  const double norm = std::sqrt(sum[0].item<double>());
  scale_gradients_to_clip(mine, norm, clip);
  return norm;
}

std::vector<Leaf> ShardedOptimizer::own_leaves(const std::vector<Leaf>& leaves) const {
  std::vector<Leaf> mine;  // Leaf holds tensor handles: what is done to them lands in `leaves`
  for (size_t i = 0; i < leaves.size(); ++i)
    if (owns(i)) mine.push_back(leaves[i]);
  return mine;
}

void ShardedOptimizer::step(Optimizer& optimizer, std::vector<Leaf>& leaves, double lr) {
  if (!sharded_) return optimizer.step(leaves, lr);
  std::vector<Leaf> mine = own_leaves(leaves);
  optimizer.step(mine, lr);
  for (int r = 0; r < world_.size(); ++r) {
    std::vector<torch::Tensor> values;
    for (size_t i = 0; i < leaves.size(); ++i)
      if (owner_[i] == r) values.push_back(leaves[i].tensor.detach());
    world_.broadcast(values, r);
  }
}

namespace {
bool slot_of(const std::string& slot, const std::string& leaf) { return starts_with(slot, leaf + "."); }
}  // namespace

void ShardedOptimizer::keep_own_state(Optimizer& optimizer, const std::vector<Leaf>& leaves) const {
  if (!sharded_) return;
  std::map<std::string, torch::Tensor> kept;
  for (const auto& [slot, t] : optimizer.state())
    for (size_t i = 0; i < leaves.size(); ++i)
      if (owns(i) && slot_of(slot, leaves[i].name)) kept[slot] = t;
  optimizer.load_state(kept, optimizer.steps(), "optimizer shard");
}

}  // namespace moeforge::train
