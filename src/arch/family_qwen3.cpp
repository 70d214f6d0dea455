// Qwen3 (dense): Llama layout with per-head q/k RMSNorm (weight [head_dim]) before RoPE;
// head_dim defaults to 128; attention_bias adds q/k/v/o biases.
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // Qwen3Config
  d.intermediate_size = 22016;
  d.num_kv_heads = 32;
  d.head_dim = 128;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  spec.qkv_bias = spec.o_bias = config.get_bool("attention_bias", false);
  spec.qk_norm = QkNorm::PerHead;
  parse_qwen_sliding_windows(config, spec);
}

// `moeforge init --family qwen3`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"head_dim", 16}, {"use_sliding_window", false}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "Qwen3ForCausalLM";
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& qwen3() {
  static const FamilyAdapter adapter{"qwen3", "Qwen3 (dense, per-head q/k norm)", parse, llama_style_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
