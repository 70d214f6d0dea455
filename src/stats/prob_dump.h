// NEXUS's router-probability dump: fp16 probabilities [tokens, layers, experts] of every counted
// token, with metadata, written as router_probs.npz (NumPy) and router_probs.safetensors.
// The layer axis holds the MoE layers only, in order; "moe_layers" maps it to model layer indices.
//
// npz members: router_probs <f2 [T, L, E]; token_ids <i4 [T]; token_domain <i4 [T] (index into
// domains); moe_layers <i8 [L]; num_tokens, num_layers, num_experts, top_k <i8 0-d; model_name <U 0-d;
// domains <U [D]; metadata <U 0-d (JSON of the scalars, as NEXUS stores it).
// safetensors: router_probs F16, token_ids I32, token_domain I32, moe_layers I64; the scalars,
// model_name and domains (JSON list) in __metadata__.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace moeforge::stats {

struct DumpInfo {
  std::string model_name;
  int64_t top_k = 0;
  std::vector<int64_t> moe_layers;
  std::vector<std::string> domains;
};

class ProbDump {
 public:
  ProbDump(int64_t num_layers, int64_t num_experts, int64_t reserve_tokens);
  // probs_VLE [V, L, E] (any float dtype, any device), ids and domains of the same V tokens.
  void append(const torch::Tensor& probs_VLE, const std::vector<int32_t>& ids, const std::vector<int32_t>& domains);
  int64_t tokens() const { return static_cast<int64_t>(token_ids_.size()); }
  // Writes dir/router_probs.npz and dir/router_probs.safetensors.
  void write(const std::filesystem::path& dir, const DumpInfo& info) const;

 private:
  int64_t layers_, experts_;
  std::vector<uint16_t> probs_;  // fp16 bits, [T, L, E]
  std::vector<int32_t> token_ids_, token_domain_;
};

// Reads router_probs.safetensors back: [T, L, E] float32 (analysis).
torch::Tensor read_prob_dump(const std::filesystem::path& safetensors_file);

}  // namespace moeforge::stats
