// What `moeforge info` reports about a model directory: spec, parameter counts (total and active
// per token), dtypes, bytes on disk and the weight memory needed to run it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"

namespace moeforge {

class CheckpointStore;

struct ModelSummary {
  ModelSpec spec;
  std::string directory;
  // Logical parameters: every weight counted once (tied embeddings once); an MXFP4 block byte
  // holds 2 parameters; MXFP4 scales are quantisation metadata, not parameters.
  uint64_t total_params = 0;
  // total minus the routed experts a token does not use: per MoE layer (E - k) / E of its routed
  // expert parameters (biases included).
  uint64_t active_params = 0;
  uint64_t routed_expert_params = 0;  // all routed experts, all layers
  uint64_t embedding_params = 0;      // embed (+ position embed) (+ lm_head when untied)
  std::map<std::string, uint64_t> dtype_tensor_counts;  // "BF16" -> number of tensors
  std::map<std::string, uint64_t> dtype_bytes;          // "BF16" -> bytes of tensor data
  uint64_t num_tensors = 0;
  uint64_t bytes_on_disk = 0;  // sum of shard file sizes
  // Weight memory to run: total_params x 4 (fp32) / x 2 (bf16). Activations and KV cache excluded.
  uint64_t fp32_weight_bytes = 0;
  uint64_t bf16_weight_bytes = 0;
  // MXFP4 checkpoints: what forward-only commands hold by default, experts packed (their stored
  // blocks and scales) and every other tensor in bf16. 0 for other layouts.
  uint64_t packed_bf16_weight_bytes = 0;
  std::vector<std::string> warnings;
};

// Loads the spec, validates the store against it (throws on missing / misshapen tensors) and counts.
ModelSummary summarize_model(const CheckpointStore& store);

nlohmann::json summary_to_json(const ModelSummary& summary);
// A readable two-column table, one fact per line.
std::string summary_to_table(const ModelSummary& summary);

}  // namespace moeforge
