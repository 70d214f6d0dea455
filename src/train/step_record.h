// One optimiser step's accounting: what its micro-batches add up to (StepStats) and the metrics.jsonl
// record built from it (loss parts, expert load and balance, router drift per MoE layer).
#pragma once

#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/losses.h"

namespace moeforge::train {

struct StepStats {
  double ce_sum = 0, lb = 0, z = 0;  // lb and z: means over the step's micro-batches
  int64_t tokens = 0;                // real tokens seen
  std::vector<torch::Tensor> counts;  // per MoE layer [E] picks
  std::vector<double> lb_per_layer;
  bool distill = false;               // the phase distils: the fields below are reported
  double kd_sum = 0, kl_sum = 0;      // sums over targets (train/distill.h HeadLossStats)
  int64_t agree = 0, targets = 0;
  double router_kd = 0;               // mean over the step's micro-batches
  std::vector<double> router_kd_per_layer;  // the same per MoE layer (empty without router KD)
  int64_t expert_picks = 0, expert_token_rows = 0;  // expert parallel: picks routed, token rows sent for them

  // Adds one micro-batch of an `accum`-way accumulated step.
  void add(double ce_sum_micro, int64_t tokens_micro, const RouterLosses& rl, int64_t accum);
};

struct StepScalars {
  int64_t global_step = 0, phase_step = 0;
  std::string phase;
  double loss = 0, ce = 0, lr = 0, grad_norm = 0, tokens_per_s = 0;
  double comm_s = -1;  // data parallel: seconds in this step's collectives, waiting for slower ranks included (< 0: one process)
  bool skipped = false;
};

// The metrics record of a step. `routers_start` / `routers_now` hold each MoE layer's router
// (fp32, in the order of stats.counts); drift is ||now - start|| relative to the larger norm.
nlohmann::json step_record(const StepScalars& scalars, const StepStats& stats, const std::vector<torch::Tensor>& routers_start,
                           const std::vector<torch::Tensor>& routers_now);

}  // namespace moeforge::train
