// What GPT-Neo and moeforge's GPT-Neo MoE share: the dense config keys, the tensor names and the
// tiny `init` config (family_gpt_neo.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include "arch/config_reader.h"
#include "arch/model_spec.h"
#include "arch/tensor_role.h"

namespace moeforge::families {

// GPTNeoConfig's keys: layers, heads, attention_types/attention_layers -> sliding windows, LayerNorm,
// gelu_new MLP with biases, learned positions, no 1/sqrt(d) attention scale. Every layer dense.
void parse_gpt_neo_base(const ConfigReader& config, ModelSpec& spec);
// transformer.wte / wpe / h.{l}.ln_1 / attn.attention.* / mlp.c_fc / mlp.c_proj / ln_f, lm_head.
NameTable gpt_neo_names();
// Tiny: vocab 512, hidden 64, 2 layers (global, local window 64), 4 heads, MLP 256.
nlohmann::json gpt_neo_init_config();

}  // namespace moeforge::families
