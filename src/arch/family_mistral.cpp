// Mistral (dense): Llama layout without biases; one sliding window on every layer (default 4096).
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // MistralConfig
  d.intermediate_size = 14336;
  d.num_kv_heads = 8;
  d.max_position_embeddings = 4096 * 32;
  d.rms_norm_eps = 1e-6;
  d.bos_token_id = 1;
  d.eos_token_ids = {2};
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  // The mask is chosen once for the whole model (MistralModel ignores layer_types).
  int64_t window = window_or_default(config, "sliding_window", 4096);
  spec.sliding_window.assign(static_cast<size_t>(spec.num_layers), window);
}

// `moeforge init --family mistral`: tiny, with the family's features on.
nlohmann::json init_config() {
  return with_keys(tiny_llama_config(), {{"sliding_window", nullptr}});
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "MistralForCausalLM";
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& mistral() {
  static const FamilyAdapter adapter{"mistral", "Mistral (dense, sliding window)", parse,
                                     llama_style_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
