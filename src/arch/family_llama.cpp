// Llama (dense): RMSNorm, SiLU-GLU MLP, RoPE; optional attention_bias (q/k/v/o) and mlp_bias.
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // LlamaConfig
  d.intermediate_size = 11008;
  d.max_position_embeddings = 2048;
  d.rms_norm_eps = 1e-6;
  d.bos_token_id = 1;
  d.eos_token_ids = {2};
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  spec.qkv_bias = spec.o_bias = config.get_bool("attention_bias", false);
  spec.mlp_bias = config.get_bool("mlp_bias", false);
}

// `moeforge init --family llama`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"rope_theta", 10000.0}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "LlamaForCausalLM";
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& llama() {
  static const FamilyAdapter adapter{"llama", "Llama (dense)", parse, llama_style_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
