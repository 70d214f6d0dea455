// Qwen2 (dense): Llama layout with q/k/v biases (never o); sliding window on layers >=
// max_window_layers when use_sliding_window (or as layer_types says).
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // Qwen2Config
  d.intermediate_size = 22016;
  d.num_kv_heads = 32;
  d.max_position_embeddings = 32768;
  d.rms_norm_eps = 1e-6;
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  spec.qkv_bias = true;  // hard-wired in Qwen2Attention
  spec.o_bias = false;
  parse_qwen_sliding_windows(config, spec);
}

// `moeforge init --family qwen2`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"use_sliding_window", false}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "Qwen2ForCausalLM";
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& qwen2() {
  static const FamilyAdapter adapter{"qwen2", "Qwen2 (dense, q/k/v bias)", parse, llama_style_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
