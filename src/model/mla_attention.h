// Multi-head latent attention (DeepSeek-V3 / Kimi-K2; see MlaSpec in arch/model_spec.h): the
// projections from the layer input to per-head queries, keys and values, RoPE applied. The
// attention itself (cache, masks, softmax, o_proj) is the Transformer's, shared with every family.
#pragma once

#include <torch/types.h>

#include "arch/model_spec.h"
#include "model/model_weights.h"

namespace moeforge::model {

struct HeadProjections {
  torch::Tensor q;  // [B, nh, T, qk_nope + qk_rope]
  torch::Tensor k;  // [B, nh, T, qk_nope + qk_rope] (the rope part shared by every head)
  torch::Tensor v;  // [B, nh, T, v_head_dim]
};

// x [B, T, H] at integer positions [T] -> q, k, v. The KV cache stores these per-head k/v (not
// the latent), so generation reuses the common cache path.
HeadProjections mla_project(const ModelSpec& spec, const LayerWeights& layer, const torch::Tensor& x_BTH,
                            const torch::Tensor& positions_T);

}  // namespace moeforge::model
