// The decisions routing data supports, per MoE layer (torch-free): usage/imbalance summaries,
// ESFT expert selection (DeepSeek), the expert-extension clone plan, shared-expert init sources.
// Rules and defaults: REFERENCE.md sections 1-2; choices documented in docs/PLAN_SCHEMA.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "stats/router_stats.h"

namespace moeforge::stats {

struct LayerSummary {
  int64_t layer = -1;
  std::vector<double> usage;           // [E] share of top-k picks (sums to 1)
  std::vector<double> gate_share;      // [E] share of combine weight
  std::vector<double> mean_prob;       // [E]
  std::vector<double> expert_entropy;  // [E] nats (router_stats.h)
  double token_entropy = 0;            // mean H_t, nats
  double mean_expert_entropy = 0;      // mean of expert_entropy over experts that were picked
  double max_minus_min = 0;            // of usage
  double cv = 0;                       // coefficient of variation of usage (population std / mean)
  double balance = 1;                  // H(usage) / log E (SmolMoE balance score)
  double switch_loss = 1;              // E * sum_e f_e P_e (Switch LB loss / alpha; 1 = balanced)
};

LayerSummary summarize_layer(const LayerStats& layer, int64_t tokens, int64_t num_experts);

// Indices of `scores` sorted by score, descending; ties keep the lower index first.
std::vector<int64_t> rank_desc(const std::vector<double>& scores);

// ESFT: the smallest set of experts (highest first) whose share of `scores` reaches top_p.
std::vector<int64_t> esft_select(const std::vector<double>& scores, double top_p);

struct CloneOptions {
  double min_usage = 0.02;    // keep experts with usage >= this ...
  double min_entropy = 0.5;   // ... and routing entropy (nats) >= this; rank by usage
  int64_t num_new = 0;        // clones per layer; 0 = the rule below
  int64_t min_new = 1, max_new = 8;
};

struct ClonePlan {
  int64_t num_new = 0;                               // same for every layer (one num_experts in config.json)
  std::map<int64_t, int64_t> suggested;              // layer -> the rule's count for that layer alone
  std::map<int64_t, std::vector<int64_t>> eligible;  // layer -> experts passing the thresholds, by usage
  std::map<int64_t, std::vector<int64_t>> clone;     // layer -> sources, num_new entries
  std::vector<std::string> notes;                    // fallbacks taken
};

// Expert-extension rule per layer: n = int(E * (max(usage) - min(usage)) + 1), + 1 if the mean
// expert entropy < min_entropy, clamped to [min_new, max_new]. grow needs one count for every layer,
// so num_new = max over layers (or options.num_new). Each layer clones its eligible experts in usage
// order, cycling when it has fewer than num_new; a layer with none eligible falls back to ranking all
// of its experts by usage (noted).
ClonePlan plan_clones(const std::vector<LayerSummary>& layers, const CloneOptions& options);

}  // namespace moeforge::stats
