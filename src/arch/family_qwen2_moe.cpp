// Qwen2-MoE: Llama attention with q/k/v bias (qkv_bias), sparse layers by decoder_sparse_step and
// mlp_only_layers, softmax-then-top-k router (norm_topk_prob default false), and one shared expert
// per MoE layer mixed in by sigmoid(shared_expert_gate(x)) with weight [1, H].
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // Qwen2MoeConfig
  d.intermediate_size = 5632;
  d.num_kv_heads = 16;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  spec.qkv_bias = config.get_bool("qkv_bias", true);
  spec.o_bias = false;

  // Windows: layer_types when given, else even layers below max_window_layers (as the config
  // class computes it); the window is sliding_window only when use_sliding_window.
  bool use = config.get_bool("use_sliding_window", false);
  int64_t window = use ? window_or_default(config, "sliding_window", 4096) : 0;
  if (config.has("layer_types")) {
    apply_layer_types(config, spec, config.get_string_list("layer_types"), window);
  } else {
    int64_t max_window_layers = config.get_int("max_window_layers", 28);
    for (int64_t l = 0; l < spec.num_layers; ++l)
      spec.sliding_window[l] = (l + 1) % 2 != 0 && l < max_window_layers ? window : 0;
  }

  parse_expert_counts(config, spec, {"num_experts", "num_local_experts"}, 60, 4);
  MoeSpec& moe = spec.moe;
  moe.moe_intermediate_size = config.get_int("moe_intermediate_size", 1408);
  parse_softmax_topk_moe(config, spec, 0.001);
  moe.shared_intermediate_size = config.get_int("shared_expert_intermediate_size", 5632);
  if (moe.shared_intermediate_size < 0)
    config.fail_key("shared_expert_intermediate_size", "must not be negative");
  moe.num_shared_experts = moe.shared_intermediate_size > 0 ? 1 : 0;
  moe.shared_gate = moe.num_shared_experts > 0 ? SharedGateKind::SigmoidGate : SharedGateKind::None;
  parse_qwen_sparse_layers(config, spec);
}

NameTable names() {
  NameTable table = sparse_moe_names();
  table[TensorRole::SharedGate] = "model.layers.{l}.mlp.shared_expert.gate_proj.weight";
  table[TensorRole::SharedUp] = "model.layers.{l}.mlp.shared_expert.up_proj.weight";
  table[TensorRole::SharedDown] = "model.layers.{l}.mlp.shared_expert.down_proj.weight";
  table[TensorRole::SharedExpertGate] = "model.layers.{l}.mlp.shared_expert_gate.weight";
  return table;
}

// As an upcycle/merge target: Qwen's sparse-layer keys, the native shared expert and qkv_bias.
void write_moe_keys(nlohmann::json& c, const ModelSpec& dense, const MoeConfigRequest& r) {
  write_qwen_moe_keys(c, dense, r);
  c["shared_expert_intermediate_size"] = r.shared_expert_width;
  c["qkv_bias"] = dense.qkv_bias;
}

// `moeforge init --family qwen2_moe`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 64},
                                         {"shared_expert_intermediate_size", 128}, {"decoder_sparse_step", 1},
                                         {"mlp_only_layers", nlohmann::json::array()}, {"norm_topk_prob", false},
                                         {"use_sliding_window", false}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "Qwen2MoeForCausalLM";
  w.experts_count_key = "num_experts";
  w.shared_expert_width_key = "shared_expert_intermediate_size";
  w.native_shared_gate = SharedGateKind::SigmoidGate;
  w.write_moe_keys = write_moe_keys;
  w.keeps_dense_layers = true;  // mlp_only_layers
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& qwen2_moe() {
  static const FamilyAdapter adapter{"qwen2_moe", "Qwen2-MoE (sparse MoE + sigmoid-gated shared expert)", parse,
                                     names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
