// Initial router rows of upcycle and merge, one [E, H] matrix per MoE layer, by RouterInit:
//   zero            all zeros (upcycle's default: every expert equal, the dense function exactly)
//   normal          N(0, std^2) (moeforge; merge's default without prompts, std 0.02)
//   ffn_input       per expert, the mean of the layer's FFN inputs (after its norm) over all tokens
//                   of its positive prompts minus the same over its negative prompts, L2-normalised
//                   (moeforge's earlier "hidden")
// and mergekit-moe's gate modes, with mergekit's formulas:
//   hidden          the residual stream entering the layer (before its norm; the token embeddings
//                   for layer 0) at each prompt's last token, averaged over the prompts; positive
//                   minus negative, L2-normalised
//   hidden_avg      the same with each prompt's mean over its tokens (mergekit averages over the
//                   padded batch length, pads included; identical when an expert's prompts have one
//                   length)
//   cheap_embed     the sum of the token embeddings of every token of the prompts, L2-normalised;
//                   positive minus negative, normalised again; the same row for every layer
//   random          N(0, 1)
//   uniform_random  U(-1/sqrt(H), 1/sqrt(H)) (torch.nn.Linear's default)
// A string prompt is tokenised as mergekit does: the tokenizer's BOS token text (if it has one)
// followed by the prompt, special tokens parsed and none added. Prompts run one at a time, unpadded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "surgery/surgery_options.h"

namespace moeforge {
class CheckpointStore;
}

namespace moeforge::surgery {

struct ExpertPrompts {
  std::string name;
  std::vector<std::vector<int64_t>> positive, negative;  // token ids
};

// Per-expert prompts, one entry per expert, either an array in expert order or an object keyed by
// expert name (merge's NAME=DIR names):
//   [ ["prompt", ...], {"positive": ["..."], "negative": ["..."]}, ... ]   or   {"code": [...], ...}
// A prompt is a string (tokenised with `tokenizer_dir`'s tokenizer, loaded once, as mergekit-moe
// does, see above) or a list of token ids. `label` names the source in messages.
std::vector<ExpertPrompts> parse_prompts(const nlohmann::json& root, const std::string& label,
                                         const std::filesystem::path& tokenizer_dir,
                                         const std::vector<std::string>& expert_names, int64_t num_experts);
// The same read from a JSON file.
std::vector<ExpertPrompts> read_prompts_file(const std::filesystem::path& file, const std::filesystem::path& tokenizer_dir,
                                             const std::vector<std::string>& expert_names, int64_t num_experts);

struct RouterInitOptions {
  RouterInit mode = RouterInit::Zero;
  double std = 0.02;  // normal
  uint64_t seed = 0;  // normal, random, uniform_random
};

// Router rows [E, H] (row-major) for each layer in `layers` of the dense model in `store`;
// `prompts` (one entry per expert) is read by the prompt modes only.
std::map<int64_t, std::vector<float>> initial_router_rows(const RouterInitOptions& options, const ModelSpec& dense_spec,
                                                          const CheckpointStore& store, const std::vector<int64_t>& layers,
                                                          int64_t num_experts, const std::vector<ExpertPrompts>& prompts);

}  // namespace moeforge::surgery
