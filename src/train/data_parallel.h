// Data parallel training over a dist::World: every rank reads the same batch order and trains on
// its share of each step's micro-batches (micro-batch i on rank i % world), then the gradients of
// the trained leaves and the step's statistics are summed over ranks. A step of R ranks with
// grad_accum A is the step of one process with grad_accum R x A on the same global batch.
#pragma once

#include <vector>

#include "dist/world.h"
#include "train/optimizer.h"
#include "train/step_record.h"
#include "train/trainable.h"

namespace moeforge::train {

// A leaf's gradient to sum over ranks (zeros where this rank's micro-batches did not reach it).
torch::Tensor& grad_or_zeros(Leaf& leaf);

// Sums every leaf's gradient over ranks (a leaf this rank's micro-batches did not reach counts as 0).
void all_reduce_gradients(dist::World& world, std::vector<Leaf>& leaves);

// Sums the step's statistics over ranks (sums and per-micro-batch means alike: each rank's means
// were already divided by the global micro-batch count).
void all_reduce_step_stats(dist::World& world, StepStats& stats);

// ZeRO-1: each trained leaf's optimiser state lives on one rank (its owner: leaves dealt greedily by
// size, the same on every rank). Every rank still holds the summed gradients and the weights.
// ZeRO-2 also shards the gradients: each leaf's gradient is reduced to its owner only and freed on
// the other ranks; the clipping norm is the all-reduced sum of the owners' squared norms.
class ShardedOptimizer {
 public:
  ShardedOptimizer(dist::World& world, const std::vector<Leaf>& leaves, int zero_stage);
  // The step's gradients summed over ranks: everywhere (stage 0/1) or on each leaf's owner (stage 2).
  void reduce_gradients(std::vector<Leaf>& leaves);
  // clip_gradients over the whole model's gradients, wherever they live; returns the norm.
  double clip_gradients(std::vector<Leaf>& leaves, double clip);
  // Owners update their leaves, then each owner's leaves are broadcast to the other ranks.
  void step(Optimizer& optimizer, std::vector<Leaf>& leaves, double lr);
  // After a resume (a checkpoint holds every rank's share, run_checkpoint.h, so it resumes on any
  // number of ranks, sharded or not): drops the state of leaves this rank does not own.
  void keep_own_state(Optimizer& optimizer, const std::vector<Leaf>& leaves) const;
  bool sharded() const { return sharded_; }

 private:
  bool owns(size_t leaf) const { return owner_[leaf] == world_.rank(); }
  std::vector<Leaf> own_leaves(const std::vector<Leaf>& leaves) const;
  dist::World& world_;
  bool sharded_;
  bool grads_sharded_ = false;
  std::vector<int> owner_;  // per leaf
};

}  // namespace moeforge::train
