// GPT-Neo MoE (moeforge's own family; no Hugging Face class holds it): GPT-Neo with its MLP replaced
// in MoE layers by a softmax-then-top-k router over GELU experts that keep GPT-Neo's c_fc/c_proj
// biases (the "domain experts inside GPT-Neo's MLP" system). Learned positions, LayerNorm and
// local/global attention stay GPT-Neo's. Sparse layers as Qwen-MoE (decoder_sparse_step,
// mlp_only_layers). transformers loads it through the remote-code files moeforge writes beside it
// (MoeforgeGptNeoMoeForCausalLM, a GPTNeoForCausalLM whose MoE layers' mlp is a router + experts).
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"
#include "arch/gpt_neo_common.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  parse_gpt_neo_base(config, spec);
  parse_expert_counts(config, spec, {"num_experts"}, 8, 2);
  MoeSpec& moe = spec.moe;
  moe.moe_intermediate_size = config.get_int("moe_intermediate_size", spec.intermediate_size);
  if (moe.moe_intermediate_size <= 0) config.fail_key("moe_intermediate_size", "must be positive");
  parse_softmax_topk_moe(config, spec, 0.01);
  moe.expert_bias = true;  // each expert is a GPT-Neo MLP: c_fc and c_proj with biases
  parse_qwen_sparse_layers(config, spec);
}

NameTable names() {
  NameTable table = gpt_neo_names();
  const std::string mlp = "transformer.h.{l}.mlp.";
  table[TensorRole::Router] = mlp + "gate.weight";
  table[TensorRole::ExpertUp] = mlp + "experts.{e}.c_fc.weight";
  table[TensorRole::ExpertUpBias] = mlp + "experts.{e}.c_fc.bias";
  table[TensorRole::ExpertDown] = mlp + "experts.{e}.c_proj.weight";
  table[TensorRole::ExpertDownBias] = mlp + "experts.{e}.c_proj.bias";
  // moeforge's extensions (config keys moeforge_shared_expert_*, moeforge_selection_bias) under
  // GPT-Neo's prefix; the shared expert is ungated like the experts, without biases.
  table[TensorRole::SharedUp] = mlp + "shared_expert.c_fc.weight";
  table[TensorRole::SharedDown] = mlp + "shared_expert.c_proj.weight";
  table[TensorRole::SharedExpertGate] = mlp + "shared_expert_gate.weight";
  table[TensorRole::SharedScale] = mlp + "shared_expert_scale";
  table[TensorRole::ScoreCorrectionBias] = mlp + "moeforge_selection_bias";
  return table;
}

// `moeforge init --family gpt_neo_moe`: GPT-Neo's tiny config with 4 experts, top-2, both layers MoE.
nlohmann::json init_config() {
  return with_keys(gpt_neo_init_config(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 128},
                                           {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
                                           {"mlp_only_layers", nlohmann::json::array()}, {"router_aux_loss_coef", 0.01}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "MoeforgeGptNeoMoeForCausalLM";
  w.experts_count_key = "num_experts";
  w.write_moe_keys = write_qwen_moe_keys;
  w.keeps_dense_layers = true;  // mlp_only_layers
  w.default_aux_loss_coef = 0.01;
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& gpt_neo_moe() {
  static const FamilyAdapter adapter{"gpt_neo_moe",
                                     "GPT-Neo MoE (moeforge; GELU experts with biases in GPT-Neo's MLP, remote code)",
                                     parse, names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
