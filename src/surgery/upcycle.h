// `moeforge upcycle`: a dense llama/mistral/qwen2/qwen3 checkpoint -> a Mixtral / Qwen3-MoE /
// Qwen2-MoE / OLMoE checkpoint whose experts come from the dense FFN (copy, noise, Drop-Upcycling,
// granular slices) and whose routers start zero, random or from per-expert prompts (router_init.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "surgery/output_plan.h"
#include "surgery/surgery_options.h"

namespace moeforge::surgery {

struct UpcycleOptions {
  std::filesystem::path source, out;
  std::string to = "mixtral";
  int64_t num_experts = 8;
  int64_t top_k = 2;
  UpcycleMethod method = UpcycleMethod::Copy;  // copy | noise | drop | granular
  double noise_std = 0.01;         // relative to each matrix's RMS (noise)
  double drop_ratio = 0.5;         // fraction of intermediate units re-initialised (drop)
  int64_t granularity = 1;         // G slices of the FFN width (granular; experts % G == 0)
  RouterInit router = RouterInit::Zero;        // any RouterInit (surgery/router_init.h)
  double router_std = 0.02;        // normal
  std::filesystem::path prompts;   // prompt modes: per-expert prompts (see router_init.h)
  std::string layers = "all";      // "all" or "0,2,4-7"
  uint64_t seed = 0;
  // Renormalise the top-k weights (norm_topk_prob). Without it (OLMoE/Qwen2-MoE default), zero
  // routing gives each expert 1/E, so down projections are scaled by E/K to keep copy exact.
  bool renormalize = true;
  bool verify = false;             // run both models and print the max logit difference
  ExecuteOptions execute;
};

struct UpcycleResult {
  std::filesystem::path written;  // empty on --dry-run
  double max_logit_diff = -1;     // --verify
};

UpcycleResult upcycle(const UpcycleOptions& options);

}  // namespace moeforge::surgery
