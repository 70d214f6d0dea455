// mergekit-moe's "hidden" router init: per expert, the mean of the base model's FFN inputs (the
// vectors a router sees) over its positive prompts minus the mean over its negative prompts,
// L2-normalised, becomes that expert's router row. Runs the dense base model with the runtime.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "arch/model_spec.h"

namespace moeforge {
class CheckpointStore;
}

namespace moeforge::surgery {

struct ExpertPrompts {
  std::string name;
  std::vector<std::vector<int64_t>> positive, negative;  // token ids
};

// Prompts file (JSON), one entry per expert, either an array in expert order or an object keyed
// by expert name (merge's NAME=DIR names):
//   [ ["prompt", ...], {"positive": ["..."], "negative": ["..."]}, ... ]   or   {"code": [...], ...}
// A prompt is a string (tokenised with `tokenizer_dir`'s tokenizer.json) or a list of token ids.
std::vector<ExpertPrompts> read_prompts_file(const std::filesystem::path& file, const std::filesystem::path& tokenizer_dir,
                                             const std::vector<std::string>& expert_names, int64_t num_experts);

// Router rows [E, H] (row-major) for each layer in `layers` of the dense model in `store`.
std::map<int64_t, std::vector<float>> hidden_router_rows(const ModelSpec& dense_spec, const CheckpointStore& store,
                                                         const std::vector<int64_t>& layers,
                                                         const std::vector<ExpertPrompts>& prompts);

}  // namespace moeforge::surgery
