// GPT-OSS: attention with q/k/v/o biases and per-head sinks, alternating sliding (even layers,
// 128) / full attention, YaRN RoPE, router with bias (top-k on logits, softmax over the k), fused
// interleaved experts with biases (bf16) or MXFP4 blocks/scales, clamped GLU (limit 7, alpha 1.702).
#include <cmath>

#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // GptOssConfig
  d.intermediate_size = 2880;
  d.num_kv_heads = 8;
  d.head_dim = 64;
  d.max_position_embeddings = 131072;
  d.rms_norm_eps = 1e-5;
  d.rope_theta = 150000.0;  // GptOssConfig.default_theta
  parse_base(config, spec, d);
  if (!config.has("rope_parameters") && !config.has("rope_scaling")) {
    // GptOssConfig.__post_init__ fills YaRN when no RoPE dict is given.
    spec.rope.scaling = RopeScaling::Yarn;
    spec.rope.factor = 32.0;
    spec.rope.beta_fast = 32.0;
    spec.rope.beta_slow = 1.0;
    spec.rope.truncate = false;
    spec.rope.original_max_position_embeddings = 4096;
    spec.rope.attention_factor = 0.1 * std::log(32.0) + 1.0;
  }
  spec.qkv_bias = spec.o_bias = config.get_bool("attention_bias", true);
  spec.attention_sinks = true;
  int64_t window = window_or_default(config, "sliding_window", 128);
  if (config.has("layer_types")) {
    apply_layer_types(config, spec, config.get_string_list("layer_types"), window);
  } else {
    for (int64_t l = 0; l < spec.num_layers; ++l) spec.sliding_window[l] = l % 2 == 0 ? window : 0;
  }
  spec.activation = Activation::GptOssClampedGlu;
  spec.swiglu_limit = config.get_double("swiglu_limit", 7.0);
  spec.swiglu_alpha = config.get_double("swiglu_alpha", 1.702);

  parse_expert_counts(config, spec, {"num_local_experts", "num_experts"}, 128, 4);
  MoeSpec& moe = spec.moe;
  moe.moe_intermediate_size = spec.intermediate_size;
  moe.router = RouterKind::TopKThenSoftmax;
  moe.router_bias = true;
  moe.norm_topk_prob = false;  // the softmax over the k already sums to 1
  moe.expert_bias = true;
  moe.router_aux_loss_coef = config.get_double("router_aux_loss_coef", 0.001);
  moe.layout = ExpertLayout::FusedInterleaved;
  if (const nlohmann::json* quant = config.find("quantization_config")) {
    std::string method = quant->is_object() && quant->contains("quant_method") && (*quant)["quant_method"].is_string()
                             ? (*quant)["quant_method"].get<std::string>()
                             : "";
    if (method == "mxfp4") moe.layout = ExpertLayout::Mxfp4;
    else config.fail_key("quantization_config", cat("has quant_method '", method, "'; only mxfp4 is supported"));
  }
  spec.is_moe.assign(static_cast<size_t>(spec.num_layers), moe.num_experts > 0);
}

NameTable names() {
  NameTable table = llama_style_names();
  table[TensorRole::Sinks] = "model.layers.{l}.self_attn.sinks";
  table[TensorRole::Router] = "model.layers.{l}.mlp.router.weight";
  table[TensorRole::RouterBias] = "model.layers.{l}.mlp.router.bias";
  table[TensorRole::ExpertsGateUp] = "model.layers.{l}.mlp.experts.gate_up_proj";
  table[TensorRole::ExpertsGateUpBias] = "model.layers.{l}.mlp.experts.gate_up_proj_bias";
  table[TensorRole::ExpertsDown] = "model.layers.{l}.mlp.experts.down_proj";
  table[TensorRole::ExpertsDownBias] = "model.layers.{l}.mlp.experts.down_proj_bias";
  table[TensorRole::ExpertsGateUpBlocks] = "model.layers.{l}.mlp.experts.gate_up_proj_blocks";
  table[TensorRole::ExpertsGateUpScales] = "model.layers.{l}.mlp.experts.gate_up_proj_scales";
  table[TensorRole::ExpertsDownBlocks] = "model.layers.{l}.mlp.experts.down_proj_blocks";
  table[TensorRole::ExpertsDownScales] = "model.layers.{l}.mlp.experts.down_proj_scales";
  return table;
}

// `moeforge init --family gpt_oss`: tiny, with the family's features on.
nlohmann::json init_config() {
  nlohmann::json c = with_keys(tiny_llama_config(), {{"num_local_experts", 4}, {"num_experts_per_tok", 2},
                                                     {"intermediate_size", 64}, {"head_dim", 16},
                                                     {"sliding_window", 64}, {"rms_norm_eps", 1e-5},
                                                     {"attention_bias", true}});
  // YaRN as GPT-OSS uses it, with a factor matching 512 / 128 positions.
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 150000.0}, {"factor", 4.0},
                          {"beta_fast", 32.0},   {"beta_slow", 1.0},       {"truncate", false},
                          {"original_max_position_embeddings", 128}};
  c.erase("hidden_act");
  return c;
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "GptOssForCausalLM";
  w.experts_count_key = "num_local_experts";
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& gpt_oss() {
  static const FamilyAdapter adapter{"gpt_oss", "GPT-OSS (sparse MoE, fused interleaved or MXFP4 experts)", parse,
                                     names(), writer(), ExpertLayout::FusedInterleaved};
  return adapter;
}

}  // namespace moeforge::families
