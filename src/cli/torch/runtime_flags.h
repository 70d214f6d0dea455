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
  bool dequantize = false;    // --dequantize: MXFP4 experts decoded into dense stacks at load
  void add_to(CLI::App* app);
  model::LoadOptions load_options() const;  // validates device/dtype with clear errors; applies --expert-gemm
};

// Parses --force-expert "L:E[,L:E]" into layer -> expert, as grow's --clone reads it: '*:E' forces E in
// every MoE layer, a negative L counts from the last layer. Without `spec` only the syntax is checked
// (before loading anything); with it, layers and experts are checked against the model.
std::map<int64_t, int64_t> parse_force_expert(const std::string& text, const ModelSpec* spec);

}  // namespace moeforge::cli
