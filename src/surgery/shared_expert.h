// `moeforge add-shared-expert`: adds one always-on shared expert to every MoE layer, initialised
// from the routed experts (mean, most used, PCA-important) or randomly, mixed in by a fixed scale,
// a learned scale or a sigmoid gate.
//
// Storage: Qwen2-MoE (without a shared expert) gets its native shared_expert / shared_expert_gate
// (sigmoid gate only); Mixtral, Qwen3-MoE, OLMoE and GPT-OSS get moeforge's extension
// (arch/moeforge_extensions.h: mlp.shared_expert.* tensors + moeforge_shared_expert_* keys).
// Starting point: fixed and learned scales start at --scale S (S = 0 is exactly the original
// model). A zero-initialised sigmoid gate weighs the shared expert by sigmoid(0) = 0.5 on every
// token, so its down projection is multiplied by S / 0.5: the model starts at exactly
// routed + S * shared(x), the same function as the fixed scale, and training moves the gate.
// GPT-OSS experts carry biases that the shared MLP has no place for: they are dropped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "surgery/output_plan.h"
#include "surgery/surgery_options.h"

namespace moeforge::surgery {

struct SharedExpertOptions {
  std::filesystem::path source, out;
  // mean | random | top1 | top1_average | top4_average | pca_topK (K = 1..E). top*/pca need a plan
  // file (plan.h) with per-layer "usage" (top*) or "importance" (pca; falls back to usage).
  SharedInit init;  // mean
  std::filesystem::path plan;
  double scale = 0.2;
  SharedGate gate = SharedGate::Fixed;  // fixed | learned | sigmoid (qwen2_moe: sigmoid only)
  int64_t width = 0;           // 0 = the routed expert width (other widths: --init random only)
  double random_std = 0.02;
  uint64_t seed = 0;
  bool verify = false;
  ExecuteOptions execute;
};

struct SharedExpertResult {
  std::filesystem::path written;
  double max_logit_diff = -1;
};

SharedExpertResult add_shared_expert(const SharedExpertOptions& options);

}  // namespace moeforge::surgery
