// Tensor roles: what a tensor *is* (layer l's q projection, expert e's gate, ...), independent of
// any family's naming. Each family adapter maps roles to on-disk name templates.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace moeforge {

enum class TensorRole : uint8_t {
  // Model-level.
  Embed,             // [V, H]
  PositionEmbed,     // [max_pos, H] (learned positions, GPT-Neo)
  FinalNorm,         // [H]
  FinalNormBias,     // [H] (LayerNorm)
  LmHead,            // [V, H] (absent when tie_word_embeddings)
  // Per layer: norms.
  AttnNorm, AttnNormBias,  // [H]
  FfnNorm, FfnNormBias,    // [H]
  // Per layer: attention.
  Q, QBias,          // [nh*hd, H], [nh*hd]
  K, KBias,          // [nkv*hd, H], [nkv*hd]
  V, VBias,          // [nkv*hd, H], [nkv*hd]
  O, OBias,          // [H, nh*hd], [H]
  QNorm,             // [hd] per head, or [nh*hd] whole projection
  KNorm,             // [hd] per head, or [nkv*hd] whole projection
  Sinks,             // [nh]
  // Per layer: multi-head latent attention (DeepSeek-V3; q_lora_rank rq, kv_lora_rank rkv,
  // qk_head_dim dqk = nope + rope, v_head_dim dv). Q is [nh*dqk, H] when rq = 0; O is [H, nh*dv].
  QA,                // [rq, H]
  QANorm,            // [rq]
  QB,                // [nh*dqk, rq]
  KvA,               // [rkv + rope, H]
  KvANorm,           // [rkv]
  KvB,               // [nh*(nope + dv), rkv]
  // Per layer: dense MLP (GPT-Neo: c_fc = MlpUp, c_proj = MlpDown).
  MlpGate, MlpGateBias,  // [F, H], [F]
  MlpUp, MlpUpBias,      // [F, H], [F]
  MlpDown, MlpDownBias,  // [H, F], [H]
  // Per MoE layer: router.
  Router,               // [E, H]
  RouterBias,           // [E]
  ScoreCorrectionBias,  // [E] selection-only bias (DeepSeek-V3)
  // Per MoE layer, per expert (PerExpert layout).
  ExpertGate,  // [Fm, H]
  ExpertUp,    // [Fm, H]
  ExpertDown,  // [H, Fm]
  ExpertUpBias,    // [Fm] (ungated experts with biases: GPT-Neo MoE's c_fc)
  ExpertDownBias,  // [H]  (its c_proj)
  // Per MoE layer, all experts in one tensor (fused layouts; shapes depend on the layout).
  ExpertsGateUp, ExpertsGateUpBias, ExpertsDown, ExpertsDownBias,
  ExpertsGateUpBlocks, ExpertsGateUpScales, ExpertsDownBlocks, ExpertsDownScales,
  // Per MoE layer: shared expert.
  SharedGate,       // [Fs, H]
  SharedUp,         // [Fs, H]
  SharedDown,       // [H, Fs]
  SharedExpertGate, // [1, H] sigmoid gate (Qwen2-MoE)
  SharedScale,      // [1] learned scale (moeforge extension)
  Count
};

// "embed", "q", "expert_gate", ... (stable names used in messages, plans and JSON).
const char* role_name(TensorRole role);
// Whether the role's name template contains {l} / {e}.
bool role_is_per_layer(TensorRole role);
bool role_is_per_expert(TensorRole role);

// role -> name template with "{l}" (layer) and "{e}" (expert) placeholders.
using NameTable = std::map<TensorRole, std::string>;

// Fills a template: format_tensor_name("model.layers.{l}.mlp.experts.{e}.w1.weight", 3, 7).
std::string format_tensor_name(const std::string& name_template, int64_t layer, int64_t expert = -1);

}  // namespace moeforge
