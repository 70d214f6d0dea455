// OLMoE: every layer MoE (experts of intermediate_size), softmax-then-top-k without
// renormalisation by default, q/k RMSNorm over the whole projection, optional clip_qkv.
#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // OlmoeConfig
  d.intermediate_size = 2048;
  d.max_position_embeddings = 4096;
  d.rms_norm_eps = 1e-5;
  d.pad_token_id = 1;
  d.eos_token_ids = {50279};
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  spec.qkv_bias = spec.o_bias = config.get_bool("attention_bias", false);
  spec.qk_norm = QkNorm::WholeProjection;
  spec.clip_qkv = config.get_double("clip_qkv", 0.0);
  if (spec.clip_qkv < 0) config.fail_key("clip_qkv", "must not be negative");

  parse_expert_counts(config, spec, {"num_experts", "num_local_experts"}, 64, 8);
  MoeSpec& moe = spec.moe;
  moe.moe_intermediate_size = spec.intermediate_size;
  moe.router = RouterKind::SoftmaxThenTopK;
  moe.norm_topk_prob = config.get_bool("norm_topk_prob", false);
  moe.router_aux_loss_coef = config.get_double("router_aux_loss_coef", 0.01);
  moe.layout = ExpertLayout::PerExpert;
  spec.is_moe.assign(static_cast<size_t>(spec.num_layers), moe.num_experts > 0);
}

NameTable names() {
  NameTable table = llama_style_names();
  table[TensorRole::Router] = "model.layers.{l}.mlp.gate.weight";
  table[TensorRole::ExpertGate] = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight";
  table[TensorRole::ExpertUp] = "model.layers.{l}.mlp.experts.{e}.up_proj.weight";
  table[TensorRole::ExpertDown] = "model.layers.{l}.mlp.experts.{e}.down_proj.weight";
  table[TensorRole::ExpertsGateUp] = "model.layers.{l}.mlp.experts.gate_up_proj";
  table[TensorRole::ExpertsDown] = "model.layers.{l}.mlp.experts.down_proj";
  return table;
}

}  // namespace

const FamilyAdapter& olmoe() {
  static const FamilyAdapter adapter{"olmoe", "OLMoE (sparse MoE, whole-projection q/k norm)", parse, names()};
  return adapter;
}

}  // namespace moeforge::families
