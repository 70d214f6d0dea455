// Accumulates router statistics (router_stats.h) from forward outputs, on the model's device:
// two scatters and two small matmuls per MoE layer and batch, copied to the host once at the end.
#pragma once

#include <torch/types.h>

#include <vector>

#include "model/transformer.h"
#include "stats/router_stats.h"

namespace moeforge::stats {

struct CollectorOptions {
  int64_t num_experts = 0;
  int64_t num_domains = 1;
  int64_t entropy_bins = 20;
};

class StatsCollector {
 public:
  StatsCollector(std::vector<int64_t> moe_layers, CollectorOptions options, torch::Device device);

  // `routing`: one entry per MoE layer (ForwardOutput::routing) for a batch flattened to N = B*T
  // rows. `rows_V` [V] int64: the counted rows (non-padding tokens); `domain_V` [V] int64: their
  // domain. Returns the per-layer router probabilities of the counted rows, [V, L, E] float32,
  // when `want_probs` (the dump), else an undefined tensor.
  torch::Tensor add(const std::vector<model::LayerRouting>& routing, const torch::Tensor& rows_V,
                    const torch::Tensor& domain_V, bool want_probs = false);

  // Copies the sums into `stats.layers` (one LayerStats per MoE layer; tokens counted in `stats`).
  void finish(RouterStats& stats) const;
  // Per layer: sum_t p_t [E] and sum_t p_t p_t^T [E, E] (float64, CPU), for router_moments.safetensors.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> moments() const;
  int64_t tokens() const { return tokens_; }
  // The accumulators themselves (float64, on the device): several ranks sum them in place.
  std::vector<torch::Tensor> sum_tensors() const;

 private:
  // Two float64 accumulators per layer, each filled by one matmul per batch:
  //   agg  [2 + D, 3E + 1] = [1 | domain one-hot | H]^T [picks | gates | probs | H]
  //   gram [2E, 2E]        = [picks | probs]^T [picks | probs]  (co-activation, sum p p^T)
  struct Sums {
    torch::Tensor agg, gram, hist;  // hist [bins]
  };
  std::vector<int64_t> layers_;
  CollectorOptions options_;
  std::vector<Sums> sums_;
  int64_t tokens_ = 0;
};

}  // namespace moeforge::stats
