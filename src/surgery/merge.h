// `moeforge merge`: several dense models of one architecture -> one MoE (Branch-Train-MiX, the
// GPT-Neo domain-expert system): each source's FFN becomes an expert, non-FFN tensors are averaged
// over the expert sources (or taken from the base), routers come from per-expert prompts
// ("hidden", run on the base) or are random/zero, and a Qwen2-MoE target may keep the base's FFN
// as its shared expert (sigmoid gate weight zero: weighted 0.5 at init).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "surgery/output_plan.h"
#include "surgery/surgery_options.h"

namespace moeforge::surgery {

struct MergeOptions {
  std::filesystem::path base, out;
  std::vector<std::pair<std::string, std::filesystem::path>> experts;  // NAME=DIR, in expert order
  int64_t top_k = 2;
  std::string to = "mixtral";
  NonFfnSource non_ffn = NonFfnSource::Average;
  std::optional<RouterInit> router;  // unset: hidden with --prompts, else random
  double router_std = 0.02;
  std::filesystem::path prompts;
  bool shared_expert = false;        // qwen2_moe: base FFN as the shared expert
  bool renormalize = true;
  uint64_t seed = 0;
  ExecuteOptions execute;
};

std::filesystem::path merge(const MergeOptions& options);

}  // namespace moeforge::surgery
