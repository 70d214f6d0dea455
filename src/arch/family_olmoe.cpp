// OLMoE: every layer MoE (experts of intermediate_size), softmax-then-top-k without
// renormalisation by default, q/k RMSNorm over the whole projection, optional clip_qkv.
#include <nlohmann/json.hpp>

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
  parse_softmax_topk_moe(config, spec, 0.01);
  spec.is_moe.assign(static_cast<size_t>(spec.num_layers), moe.num_experts > 0);
}

// As an upcycle/merge target: every layer is MoE, the expert width is intermediate_size.
void write_moe_keys(nlohmann::json& c, const ModelSpec& dense, const MoeConfigRequest& r) {
  c["num_experts"] = r.num_experts;
  c["intermediate_size"] = r.expert_width;
  c["norm_topk_prob"] = r.renormalize;
  c["attention_bias"] = dense.qkv_bias;
  c["clip_qkv"] = nullptr;
}

// `moeforge init --family olmoe`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"intermediate_size", 64}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "OlmoeForCausalLM";
  w.experts_count_key = "num_experts";
  w.write_moe_keys = write_moe_keys;
  w.default_aux_loss_coef = 0.01;
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& olmoe() {
  static const FamilyAdapter adapter{"olmoe", "OLMoE (sparse MoE, whole-projection q/k norm)", parse,
                                     sparse_moe_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
