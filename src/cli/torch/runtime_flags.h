// Flags shared by every subcommand that runs a model: --device, --dtype, --expert-gemm,
// --max-memory, --verbose.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "model/model_weights.h"

namespace moeforge::cli {

struct RuntimeFlags {
  std::string device = "cpu";
  std::string dtype = "fp32";
  std::string expert_gemm = "auto";
  double max_memory_gb = -1;  // --max-memory; < 0: MemAvailable
  bool verbose = false;       // --verbose: print the memory plan
  void add_to(CLI::App* app);
  model::LoadOptions load_options() const;  // validates device/dtype with clear errors; applies --expert-gemm
};

// Parses "L:E[,L:E]" (--force-expert) into layer -> expert.
std::map<int64_t, int64_t> parse_layer_expert_pairs(const std::string& text, const std::string& flag);

}  // namespace moeforge::cli
