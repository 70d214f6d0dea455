// Expert parallel: each rank of a run computes one contiguous block of every MoE layer's experts,
// for the tokens of every rank. A rank routes its own tokens and sends each token once to every
// rank that owns one of its picks (counts first, then the tokens, and each pick's expert, its
// token's row and its combine weight), the owners run their experts weighted (run_experts) and sum
// each token's picks, the sums go back by the reverse exchange and are added where the tokens live.
// The exchanges of tokens, weights and sums are autograd functions (the backward is the reverse
// all-to-all), so input and weight gradients flow to every rank and each expert's weight gradient
// forms on its owner from all ranks' tokens; a rank never reads the experts it does not own (mapped
// frozen experts are never paged in there). The transport is the caller's (dist::World over c10d):
// the runtime sees a function.
#pragma once

#include <torch/types.h>

#include <functional>
#include <vector>

#include "model/moe_experts.h"

namespace moeforge::model {

// What a rank's exchanges did, summed over calls (the trainer resets it each step).
struct ExchangeTally {
  double seconds = 0;      // time in the all-to-alls, forward and backward
  int64_t picks = 0;       // (token, expert) picks routed
  int64_t token_rows = 0;  // token rows sent for them (one per token and owner; own rank's included)
};

struct ExpertParallel {
  int rank = 0, size = 1;
  // rows [N, ...]: the first send[0] rows to rank 0, the next send[1] to rank 1, ...; returns the
  // rows received, recv[r] from rank r, in rank order. Every rank calls it the same number of times.
  std::function<torch::Tensor(const torch::Tensor& rows, const std::vector<int64_t>& send, const std::vector<int64_t>& recv)>
      all_to_all;
  ExchangeTally* tally = nullptr;  // when set, the exchanges are counted here
  bool active() const { return size > 1 && static_cast<bool>(all_to_all); }
  // Rank r owns experts [first_expert(r, E), first_expert(r + 1, E)).
  int64_t first_expert(int r, int64_t num_experts) const { return static_cast<int64_t>(r) * num_experts / size; }
};

// run_experts (model/moe_experts.h) with the experts split over `ep`'s ranks; the same value and
// gradients (up to the order of floating-point sums). Collective: every rank calls it per MoE layer.
torch::Tensor run_experts_parallel(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                                   const torch::Tensor& weights_TK, const StackedExperts& experts,
                                   const ActivationOptions& activation, const ExpertParallel& ep);

}  // namespace moeforge::model
