// Data parallel training over a dist::World: every rank reads the same batch order and trains on
// its share of each step's micro-batches (micro-batch i on rank i % world), then the gradients of
// the trained leaves and the step's statistics are summed over ranks. A step of R ranks with
// grad_accum A is the step of one process with grad_accum R x A on the same global batch.
#pragma once

#include <vector>

#include "dist/world.h"
#include "train/step_record.h"
#include "train/trainable.h"

namespace moeforge::train {

// Sums every leaf's gradient over ranks (a leaf this rank's micro-batches did not reach counts as 0).
void all_reduce_gradients(dist::World& world, std::vector<Leaf>& leaves);

// Sums the step's statistics over ranks (sums and per-micro-batch means alike: each rank's means
// were already divided by the global micro-batch count).
void all_reduce_step_stats(dist::World& world, StepStats& stats);

}  // namespace moeforge::train
