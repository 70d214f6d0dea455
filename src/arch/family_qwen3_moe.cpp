// Qwen3-MoE: Qwen3 attention (per-head q/k norm, attention_bias), sparse layers as Qwen2-MoE,
// softmax-then-top-k router, no shared expert. Configs spell the expert count num_experts
// (hub files) or num_local_experts (what transformers 5 writes back).
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // Qwen3MoeConfig (no head_dim field: hidden / heads unless the file says)
  d.intermediate_size = 6144;
  d.num_kv_heads = 4;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  spec.qkv_bias = spec.o_bias = config.get_bool("attention_bias", false);
  spec.qk_norm = QkNorm::PerHead;
  // Qwen3MoeModel picks one mask for all layers.
  bool use = config.get_bool("use_sliding_window", false);
  int64_t window = use ? window_or_default(config, "sliding_window", 4096) : 0;
  spec.sliding_window.assign(static_cast<size_t>(spec.num_layers), window);

  parse_expert_counts(config, spec, {"num_experts", "num_local_experts"}, 128, 8);
  spec.moe.moe_intermediate_size = config.get_int("moe_intermediate_size", 768);
  parse_softmax_topk_moe(config, spec, 0.001);
  parse_qwen_sparse_layers(config, spec);
}

// As an upcycle/merge target: Qwen's sparse-layer keys; q/k/v bias is attention_bias here.
void write_moe_keys(nlohmann::json& c, const ModelSpec& dense, const MoeConfigRequest& r) {
  write_qwen_moe_keys(c, dense, r);
  c["attention_bias"] = dense.qkv_bias;
}

// `moeforge init --family qwen3_moe`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 64},
                                         {"head_dim", 16}, {"decoder_sparse_step", 1},
                                         {"mlp_only_layers", nlohmann::json::array()}, {"norm_topk_prob", true},
                                         {"use_sliding_window", false}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "Qwen3MoeForCausalLM";
  w.experts_count_key = "num_experts";
  w.write_moe_keys = write_moe_keys;
  w.keeps_dense_layers = true;  // mlp_only_layers
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& qwen3_moe() {
  static const FamilyAdapter adapter{"qwen3_moe", "Qwen3-MoE (sparse MoE, per-head q/k norm)", parse,
                                     sparse_moe_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
