// Router statistics of one model on one data sample (what `moeforge stats` measures and `analyze`
// reads), and their stats.json form. Schema: docs/PLAN_SCHEMA.md ("stats.json, version 1").
//
// Definitions (per MoE layer, over the counted tokens t = non-padding tokens of the sample):
//   counts[e]          number of tokens whose top-k picks include e (sum over e = tokens * k)
//   gate_sum[e]        sum of the combine weights e received
//   prob_sum[e]        sum of router probabilities p_t[e] (softmax over all E; sigmoid scores for
//                      sigmoid routers); mean_prob = prob_sum / tokens
//   H_t                routing entropy of token t in nats: -sum_e q log q, q = p_t / sum(p_t)
//   expert_entropy[e]  mean of H_t over the tokens that picked e ("routing entropy" of an expert:
//                      how uncertain the router is when it sends tokens to e; 0 when never picked)
//   entropy_hist[b]    tokens whose H_t / log(E) falls into bin b of `bins` equal bins over [0, 1]
//   coactivation[i][j] tokens that picked both i and j (diagonal = counts)
//   domain_*[d][e]     the same sums restricted to blocks of domain d
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace moeforge::stats {

inline constexpr int kStatsVersion = 1;

struct LayerStats {
  int64_t layer = -1;                              // model layer index
  std::vector<double> counts, gate_sum, prob_sum;  // [E]
  std::vector<double> entropy_sum;                 // [E] sum of H_t over picks of e
  std::vector<double> coactivation;                // [E*E] row-major
  std::vector<double> entropy_hist;                // [bins]
  double token_entropy_sum = 0;                    // sum over tokens of H_t
  std::vector<std::vector<double>> domain_counts, domain_gate_sum;  // [D][E]
  std::vector<double> loss_delta;                  // [E] ablation loss rise (nats); empty = not measured

  std::vector<double> usage() const;           // counts / sum(counts)
  std::vector<double> expert_entropy() const;  // entropy_sum / counts (0 where counts == 0)
};

struct RouterStats {
  // model identity (arch/plan.h "model") plus what routing needs
  std::string model_path, model_type;
  int64_t num_layers = 0, num_experts = 0, hidden_size = 0, top_k = 0;
  // data
  std::string data_spec;
  int64_t block_size = 0, blocks = 0, tokens = 0;
  std::vector<std::string> domains;
  std::vector<int64_t> domain_tokens;  // [D]
  bool calibrated = false;
  double calibration_kl = 0;           // KL(sample || pool) of token unigrams, when calibrated
  int64_t entropy_bins = 20;
  std::vector<LayerStats> layers;      // MoE layers in order
  // loss ablation
  int64_t loss_delta_tokens = 0;
  double loss_base = 0;
  // side files in the stats directory ("" = absent)
  std::string probs_npz, probs_safetensors, moments_file;
  double loop_seconds = 0;             // forward + collection wall time (benchmarks)
  double collect_seconds = 0;          // of which collection (host clock; exact on CPU)
  bool collected = true;               // false: --forward-only (benchmark baseline)
};

nlohmann::json to_json(const RouterStats& stats);
// Parses and validates stats.json; `label` names the file in errors.
RouterStats stats_from_json(const nlohmann::json& root, const std::string& label);
RouterStats read_stats(const std::filesystem::path& stats_dir);

}  // namespace moeforge::stats
