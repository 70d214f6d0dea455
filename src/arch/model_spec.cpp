// ModelSpec invariants (checked once, right after parsing) and enum names.
#include "arch/model_spec.h"

#include "common/error.h"

namespace moeforge {

int64_t ModelSpec::num_moe_layers() const {
  int64_t count = 0;
  for (bool moe_layer : is_moe) count += moe_layer ? 1 : 0;
  return count;
}

void ModelSpec::validate() const {
  auto bad = [&](auto&&... parts) { fail(cat(parts...), " in ", model_type, " config ", source); };
  if (num_layers <= 0) bad("num_layers (", num_layers, ") must be positive");
  if (hidden_size <= 0) bad("hidden_size (", hidden_size, ") must be positive");
  if (vocab_size <= 0) bad("vocab_size (", vocab_size, ") must be positive");
  if (num_heads <= 0) bad("num_attention_heads (", num_heads, ") must be positive");
  if (num_kv_heads <= 0) bad("num_key_value_heads (", num_kv_heads, ") must be positive");
  if (num_heads % num_kv_heads != 0)
    bad("num_attention_heads (", num_heads, ") is not a multiple of num_key_value_heads (", num_kv_heads, ")");
  if (head_dim <= 0) bad("head_dim (", head_dim, ") must be positive");
  if (positions == PositionKind::Rope) {
    if (rotary_dim() % 2 != 0 || rotary_dim() <= 0)
      bad("rotary dimension (head_dim ", head_dim, " x partial_rotary_factor ", rope.partial_rotary_factor,
          ") must be even and positive");
    if (rope.theta <= 0) bad("rope_theta (", rope.theta, ") must be positive");
    if (rope.scaling != RopeScaling::None && rope.factor <= 0) bad("rope factor (", rope.factor, ") must be positive");
  }
  if (mla.enabled()) {
    if (mla.q_lora_rank < 0) bad("q_lora_rank (", mla.q_lora_rank, ") must not be negative");
    if (mla.qk_nope_head_dim < 0) bad("qk_nope_head_dim (", mla.qk_nope_head_dim, ") must not be negative");
    if (mla.qk_rope_head_dim <= 0 || mla.qk_rope_head_dim % 2 != 0)
      bad("qk_rope_head_dim (", mla.qk_rope_head_dim, ") must be even and positive");
    if (mla.v_head_dim <= 0) bad("v_head_dim (", mla.v_head_dim, ") must be positive");
    if (head_dim != mla.qk_rope_head_dim || rotary_dim() != head_dim)
      bad("latent attention rotates qk_rope_head_dim (", mla.qk_rope_head_dim, ") dims, not ", rotary_dim());
    if (num_kv_heads != num_heads || qk_norm != QkNorm::None || attention_sinks || qkv_bias || clip_qkv > 0)
      bad("latent attention has one k/v per head and no q/k norm, sinks, q/k/v bias or clipping");
  }
  if (positions == PositionKind::Learned && max_position_embeddings <= 0)
    bad("max_position_embeddings (", max_position_embeddings, ") must be positive for learned positions");
  if (static_cast<int64_t>(sliding_window.size()) != num_layers)
    bad("sliding windows given for ", sliding_window.size(), " layers, expected ", num_layers);
  if (static_cast<int64_t>(is_moe.size()) != num_layers)
    bad("MoE layer flags given for ", is_moe.size(), " layers, expected ", num_layers);
  for (int64_t w : sliding_window)
    if (w < 0) bad("sliding window (", w, ") must not be negative");
  bool any_dense = false;
  for (bool moe_layer : is_moe) any_dense = any_dense || !moe_layer;
  if (any_dense && intermediate_size <= 0)
    bad("intermediate_size (", intermediate_size, ") must be positive for dense layers");
  if (!has_moe()) {
    if (num_moe_layers() > 0) bad("MoE layers without experts");
    return;
  }
  if (moe.top_k < 1 || moe.top_k > moe.num_experts)
    bad("num_experts_per_tok (", moe.top_k, ") must be in [1, num_experts (", moe.num_experts, ")]");
  if (moe.moe_intermediate_size <= 0) bad("moe_intermediate_size (", moe.moe_intermediate_size, ") must be positive");
  if (moe.num_shared_experts < 0) bad("shared expert count (", moe.num_shared_experts, ") must not be negative");
  if (moe.num_shared_experts > 0 && moe.shared_intermediate_size <= 0)
    bad("shared expert width (", moe.shared_intermediate_size, ") must be positive");
  if (moe.router == RouterKind::Sigmoid) {
    if (moe.n_group < 1 || moe.num_experts % moe.n_group != 0)
      bad("n_group (", moe.n_group, ") must divide the number of experts (", moe.num_experts, ")");
    if (moe.topk_group < 1 || moe.topk_group > moe.n_group)
      bad("topk_group (", moe.topk_group, ") must be in [1, n_group (", moe.n_group, ")]");
  }
  if (moe.layout == ExpertLayout::Mxfp4) {
    if (hidden_size % 32 != 0) bad("hidden_size (", hidden_size, ") must be a multiple of 32 for MXFP4 experts");
    if (moe.moe_intermediate_size % 32 != 0)
      bad("intermediate_size (", moe.moe_intermediate_size, ") must be a multiple of 32 for MXFP4 experts");
  }
}

const char* to_string(NormKind value) { return value == NormKind::RmsNorm ? "rms_norm" : "layer_norm"; }

const char* to_string(Activation value) {
  switch (value) {
    case Activation::SiluGlu: return "silu_glu";
    case Activation::GeluNew: return "gelu_new";
    case Activation::GptOssClampedGlu: return "gpt_oss_clamped_glu";
  }
  return "invalid";
}

const char* to_string(QkNorm value) {
  switch (value) {
    case QkNorm::None: return "none";
    case QkNorm::PerHead: return "per_head";
    case QkNorm::WholeProjection: return "whole_projection";
  }
  return "invalid";
}

const char* to_string(PositionKind value) { return value == PositionKind::Rope ? "rope" : "learned"; }

void check_sequence_length(const ModelSpec& spec, int64_t seq_len, const std::string& where, bool allow_longer) {
  const int64_t max = spec.max_position_embeddings;
  if (max <= 0 || seq_len <= max) return;
  if (spec.positions == PositionKind::Learned)
    fail(where, ": ", seq_len, " tokens exceed ", spec.source, "'s max_position_embeddings ", max,
         " (learned positions: there is no embedding past them)");
  if (!allow_longer)
    fail(where, ": ", seq_len, " tokens exceed ", spec.source, "'s max_position_embeddings ", max,
         " (positions past it were never trained; --allow-long-seq, or \"allow_long_seq\": true in a recipe, runs it anyway)");
}

const char* to_string(RopeScaling value) {
  switch (value) {
    case RopeScaling::None: return "none";
    case RopeScaling::Linear: return "linear";
    case RopeScaling::Dynamic: return "dynamic";
    case RopeScaling::Llama3: return "llama3";
    case RopeScaling::Yarn: return "yarn";
  }
  return "invalid";
}

const char* to_string(ExpertLayout value) {
  switch (value) {
    case ExpertLayout::PerExpert: return "per_expert";
    case ExpertLayout::FusedConcat: return "fused_concat";
    case ExpertLayout::FusedInterleaved: return "fused_interleaved";
    case ExpertLayout::Mxfp4: return "mxfp4";
  }
  return "invalid";
}

const char* to_string(RouterKind value) {
  switch (value) {
    case RouterKind::SoftmaxThenTopK: return "softmax_then_topk";
    case RouterKind::TopKThenSoftmax: return "topk_then_softmax";
    case RouterKind::Sigmoid: return "sigmoid";
  }
  return "invalid";
}

const char* to_string(SharedGateKind value) {
  switch (value) {
    case SharedGateKind::None: return "none";
    case SharedGateKind::SigmoidGate: return "sigmoid_gate";
    case SharedGateKind::FixedScale: return "fixed_scale";
    case SharedGateKind::LearnedScale: return "learned_scale";
  }
  return "invalid";
}

}  // namespace moeforge
