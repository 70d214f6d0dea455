// `moeforge merge`: several dense models of one architecture -> one MoE (Branch-Train-MiX, the
// GPT-Neo domain-expert system): each source's FFN becomes an expert, non-FFN tensors are averaged
// over the expert sources (or taken from the base), routers come from per-expert prompts run on
// the base or are random/zero (surgery/router_init.h), and a Qwen2-MoE target may keep the base's FFN
// as its shared expert (sigmoid gate weight zero: weighted 0.5 at init).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "surgery/output_plan.h"
#include "surgery/router_init.h"
#include "surgery/surgery_options.h"

namespace moeforge::surgery {

struct MergeOptions {
  std::filesystem::path base, out;
  std::vector<std::pair<std::string, std::filesystem::path>> experts;  // NAME=DIR, in expert order
  int64_t top_k = 2;
  std::string to;  // empty: the base family's only target (gpt_neo -> gpt_neo_moe), else mixtral
  NonFfnSource non_ffn = NonFfnSource::Average;
  std::optional<RouterInit> router;  // unset: hidden with prompts, else normal
  double router_std = 0.02;          // normal
  std::filesystem::path prompts;
  std::vector<ExpertPrompts> expert_prompts;  // already tokenised (a mergekit config); wins over `prompts`
  // Per expert (empty = none), mergekit's noise_scale (N(0, s^2) added to the expert's FFN weights)
  // and residual_scale (its down projection scaled).
  std::vector<double> noise_scale, residual_scale;
  bool shared_expert = false;        // qwen2_moe: base FFN as the shared expert
  bool renormalize = true;
  uint64_t seed = 0;
  ExecuteOptions execute;
};

std::filesystem::path merge(const MergeOptions& options);

}  // namespace moeforge::surgery
