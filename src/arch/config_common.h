// Parsing shared by every family: sizes, RoPE (rope_parameters or legacy rope_theta/rope_scaling),
// special tokens, MoE count checks, and the Llama-style name table most families start from.
#pragma once

#include <cstdint>
#include <vector>

#include "arch/config_reader.h"
#include "arch/family_adapter.h"
#include "arch/model_spec.h"
#include "arch/tensor_role.h"
#include "common/error.h"

namespace moeforge {

// The transformers config class's defaults for keys that are optional. hidden_size,
// num_hidden_layers, num_attention_heads and vocab_size are required (every real config has them).
struct BaseDefaults {
  int64_t intermediate_size = 0;
  int64_t num_kv_heads = 0;       // 0 = num_attention_heads
  int64_t head_dim = 0;           // 0 = hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;    // the class's default_theta
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = -1;
};

// Largest layer count accepted. Per-layer tables are sized by num_hidden_layers before any tensor
// is read, so a corrupt value must fail with a message instead of exhausting memory; real models
// have a few hundred layers at most.
constexpr int64_t kMaxLayers = 1 << 16;
// Throws "key 'KEY' must be between 1 and 65536, got N" unless 1 <= layers <= kMaxLayers.
void check_num_layers(const ConfigReader& config, const std::string& key, int64_t layers);

// Sizes, RMSNorm eps, RoPE, tie_word_embeddings, token ids; sliding windows all 0; is_moe all false;
// attention_scale 1/sqrt(head_dim).
void parse_base(const ConfigReader& config, ModelSpec& spec, const BaseDefaults& defaults);
void parse_rope(const ConfigReader& config, ModelSpec& spec, double default_theta);
// bos/eos/pad from a generation_config.json, overriding the config's when present.
void apply_generation_config(const nlohmann::json& generation_config, const std::string& label,
                             ModelSpec& spec);

// Reads num_experts (first present of `expert_keys`) and num_experts_per_tok, checks
// 1 <= top_k <= num_experts naming the keys and family.
void parse_expert_counts(const ConfigReader& config, ModelSpec& spec,
                         std::initializer_list<const char*> expert_keys, int64_t default_experts,
                         int64_t default_top_k);

// Qwen-MoE style sparse layers: layer l is MoE iff l not in mlp_only_layers, num_experts > 0 and
// (l + 1) % decoder_sparse_step == 0.
void parse_qwen_sparse_layers(const ConfigReader& config, ModelSpec& spec);

// Qwen2/Qwen3 dense sliding windows: layer_types when given, else "sliding_attention" for
// l >= max_window_layers; window = sliding_window when use_sliding_window, else none.
void parse_qwen_sliding_windows(const ConfigReader& config, ModelSpec& spec);
// A window size key: absent -> fallback (the class default), explicit null -> 0 (no window).
int64_t window_or_default(const ConfigReader& config, const std::string& key, int64_t fallback);
// Fails unless config[key] (or fallback when absent) is one of `supported` (hidden_act etc.).
void expect_string(const ConfigReader& config, const std::string& key, const std::string& fallback,
                   std::initializer_list<const char*> supported);
// Per-layer windows from a layer_types list ("sliding_attention" -> window, "full_attention" -> 0).
void apply_layer_types(const ConfigReader& config, ModelSpec& spec,
                       const std::vector<std::string>& layer_types, int64_t window);

// model.embed_tokens / model.layers.{l}.{input_layernorm,post_attention_layernorm,self_attn.*,
// mlp.{gate,up,down}_proj} / model.norm / lm_head, including the optional biases and q/k norms.
NameTable llama_style_names();
// llama_style_names plus the Qwen-MoE/OLMoE sparse block: router model.layers.{l}.mlp.gate and
// experts model.layers.{l}.mlp.experts.{e}.{gate,up,down}_proj (or fused gate_up_proj/down_proj).
NameTable sparse_moe_names();
// Softmax-then-top-k routing over per-expert tensors (Qwen2/3-MoE, OLMoE): norm_topk_prob and
// router_aux_loss_coef from the config, with the family's default aux coefficient.
void parse_softmax_topk_moe(const ConfigReader& config, ModelSpec& spec, double default_aux_coef);

// --- write side (FamilyWriter) ---
// The Llama-style tiny config `moeforge init` starts most families from (vocab 512, hidden 64,
// 2 layers, 4 heads / 2 kv heads).
nlohmann::json tiny_llama_config();
// `base` with `extra`'s keys set over it.
nlohmann::json with_keys(nlohmann::json base, const nlohmann::json& extra);
// Qwen2/3-MoE target keys: num_experts, moe_intermediate_size, norm_topk_prob, decoder_sparse_step 1
// and mlp_only_layers for the layers the request leaves dense.
void write_qwen_moe_keys(nlohmann::json& config, const ModelSpec& dense, const MoeConfigRequest& request);

}  // namespace moeforge
