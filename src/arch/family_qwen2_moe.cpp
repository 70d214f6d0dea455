// Qwen2-MoE: Llama attention with q/k/v bias (qkv_bias), sparse layers by decoder_sparse_step and
// mlp_only_layers, softmax-then-top-k router (norm_topk_prob default false), and one shared expert
// per MoE layer mixed in by sigmoid(shared_expert_gate(x)) with weight [1, H].
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

}  // namespace

const FamilyAdapter& qwen2_moe() {
  static const FamilyAdapter adapter{"qwen2_moe", "Qwen2-MoE (sparse MoE + sigmoid-gated shared expert)", parse,
                                     names()};
  return adapter;
}

}  // namespace moeforge::families
