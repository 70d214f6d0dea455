// Rotary position embeddings as transformers computes them: inverse frequencies for the default,
// linear, dynamic-NTK, llama3 and YaRN rules, and the rotate-half application to q/k.
#pragma once

#include <torch/types.h>

#include "arch/model_spec.h"

namespace moeforge::model {

// Inverse frequencies [rotary_dim / 2] (float32) and the cos/sin multiplier (YaRN attention factor).
// `sequence_length` matters only for dynamic NTK scaling.
std::pair<torch::Tensor, double> rope_inverse_frequencies(const ModelSpec& spec, int64_t sequence_length);

// cos and sin [T, rotary_dim] for integer positions [T].
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const ModelSpec& spec, const torch::Tensor& positions,
                                                     torch::Dtype dtype);

// Rotates the first rotary_dim features of x [B, heads, T, head_dim] (rotate-half convention).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace moeforge::model
