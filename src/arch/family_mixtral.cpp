// Mixtral (sparse MoE): every layer routes over E experts, softmax over all E then top-k,
// always renormalised; experts block_sparse_moe.experts.{e}.w1 (gate) / w3 (up) / w2 (down).
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // MixtralConfig
  d.intermediate_size = 14336;
  d.num_kv_heads = 8;
  d.max_position_embeddings = 4096 * 32;
  d.rms_norm_eps = 1e-5;
  d.rope_theta = 1e6;  // MixtralConfig.default_theta
  d.bos_token_id = 1;
  d.eos_token_ids = {2};
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  int64_t window = window_or_default(config, "sliding_window", 0);
  spec.sliding_window.assign(static_cast<size_t>(spec.num_layers), window);

  parse_expert_counts(config, spec, {"num_local_experts", "num_experts"}, 8, 2);
  MoeSpec& moe = spec.moe;
  moe.moe_intermediate_size = spec.intermediate_size;
  moe.router = RouterKind::SoftmaxThenTopK;
  moe.norm_topk_prob = true;  // MixtralTopKRouter always renormalises
  moe.router_aux_loss_coef = config.get_double("router_aux_loss_coef", 0.001);
  moe.layout = ExpertLayout::PerExpert;
  spec.is_moe.assign(static_cast<size_t>(spec.num_layers), moe.num_experts > 0);
}

NameTable names() {
  NameTable table = llama_style_names();
  table[TensorRole::Router] = "model.layers.{l}.block_sparse_moe.gate.weight";
  table[TensorRole::ExpertGate] = "model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight";
  table[TensorRole::ExpertUp] = "model.layers.{l}.block_sparse_moe.experts.{e}.w3.weight";
  table[TensorRole::ExpertDown] = "model.layers.{l}.block_sparse_moe.experts.{e}.w2.weight";
  return table;
}

// transformers v5 renames block_sparse_moe -> mlp in memory when it fuses the experts.
NameTable fused_names() {
  return {
      {TensorRole::Router, "model.layers.{l}.mlp.gate.weight"},
      {TensorRole::ExpertsGateUp, "model.layers.{l}.mlp.experts.gate_up_proj"},
      {TensorRole::ExpertsDown, "model.layers.{l}.mlp.experts.down_proj"},
  };
}

// As an upcycle/merge target: every layer is MoE, the expert width is intermediate_size.
void write_moe_keys(nlohmann::json& c, const ModelSpec&, const MoeConfigRequest& r) {
  c["num_local_experts"] = r.num_experts;
  c["intermediate_size"] = r.expert_width;
}

// `moeforge init --family mixtral`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(),
                   {{"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"sliding_window", nullptr}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "MixtralForCausalLM";
  w.experts_count_key = "num_local_experts";
  w.write_moe_keys = write_moe_keys;
  w.always_renormalizes = true;  // MixtralTopKRouter always renormalises
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& mixtral() {
  static const FamilyAdapter adapter{"mixtral", "Mixtral (sparse MoE, experts w1/w3/w2)", parse,
                                     names(), writer(), ExpertLayout::FusedConcat, fused_names()};
  return adapter;
}

}  // namespace moeforge::families
