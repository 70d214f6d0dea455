// `moeforge merge --mergekit-config moe.yml`: mergekit-moe's own MoE YAML read into MergeOptions,
// so a user's existing config works unchanged. Fields (mergekit's MoEMergeConfig):
//   base_model          the model whose non-FFN tensors, hidden states and tokenizer are used
//   experts[]           source_model (its FFN becomes the expert), positive_prompts,
//                       negative_prompts, noise_scale (N(0, s^2) added to the expert's FFN),
//                       residual_scale (its down projection scaled)
//   gate_mode           hidden (default; hidden_last is the same), hidden_avg, cheap_embed, random,
//                       uniform_random: the formulas of surgery/router_init.h
//   experts_per_token   top-k (default 2)
//   dtype               must be the base's own dtype when given (moeforge merge keeps it)
//   architecture        mixtral (the default for Llama/Mistral bases, as mergekit picks it) or
//                       qwen3 (Qwen3-MoE); mergekit's qwen (a prompted shared expert) and deepseek
//                       outputs are refused with the reason
// Model references are local directories: as mergekit, relative to the working directory, else to
// the YAML file's directory; "model+lora" and "@revision" references are refused. Keys mergekit
// would ignore are ignored with a warning.
#pragma once

#include <filesystem>

#include "surgery/merge.h"

namespace moeforge::surgery {

MergeOptions read_mergekit_config(const std::filesystem::path& yaml_file);

}  // namespace moeforge::surgery
