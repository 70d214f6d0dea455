// Expert ablation: how much the loss rises when one expert is taken out of the router's choice.
// The expert gets a selection bias of -1e9 (ForwardOptions::selection_bias): it is never picked and
// the next-best expert takes its slot, with combine weights computed from the unbiased scores as
// usual, so the layer keeps k experts per token. Needs top_k < num_experts.
// Cost: 1 + (MoE layers x experts) forward passes over the sample.
#pragma once

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace moeforge::stats {

struct LossSample {
  std::vector<int64_t> ids;        // [T]
  std::vector<uint8_t> loss_mask;  // [T]; position t-1 predicts t where loss_mask[t] == 1
};

struct LossDeltaOptions {
  int64_t batch_size = 8;
  bool progress = true;  // stderr
};

struct LossDeltaResult {
  double base_loss = 0;                        // mean CE (nats) over the sample's targets
  int64_t targets = 0;
  std::vector<std::vector<double>> delta;      // [MoE layer][E]: ablated loss - base loss
};

LossDeltaResult measure_loss_delta(const model::Transformer& model, const std::vector<LossSample>& sample,
                                   const LossDeltaOptions& options = {});

}  // namespace moeforge::stats
