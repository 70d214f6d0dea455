// Shared config parsing: sizes, RoPE, special tokens, MoE counts and per-layer patterns.
#include "arch/config_common.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace moeforge {

void check_num_layers(const ConfigReader& config, const std::string& key, int64_t layers) {
  if (layers <= 0 || layers > kMaxLayers)
    config.fail_key(key, cat("must be between 1 and ", kMaxLayers, ", got ", layers));
}

void parse_base(const ConfigReader& config, ModelSpec& spec, const BaseDefaults& d) {
  spec.hidden_size = config.required_int("hidden_size");
  spec.num_layers = config.required_int("num_hidden_layers");
  spec.num_heads = config.required_int("num_attention_heads");
  spec.vocab_size = config.required_int("vocab_size");
  if (spec.num_heads <= 0) config.fail_key("num_attention_heads", "must be positive");
  check_num_layers(config, "num_hidden_layers", spec.num_layers);
  spec.intermediate_size = config.get_int("intermediate_size", d.intermediate_size);
  // Absent keys take the class default; an explicit null means "derive it" (post_init), as in
  // transformers: num_key_value_heads -> num_attention_heads, head_dim -> hidden / heads.
  const auto& json = config.json();
  spec.num_kv_heads = config.has("num_key_value_heads") ? config.required_int("num_key_value_heads")
                      : json.contains("num_key_value_heads") || d.num_kv_heads <= 0 ? spec.num_heads
                                                                                    : d.num_kv_heads;
  spec.head_dim = config.has("head_dim") ? config.required_int("head_dim")
                  : json.contains("head_dim") || d.head_dim <= 0 ? spec.hidden_size / spec.num_heads
                                                                 : d.head_dim;
  spec.max_position_embeddings = config.get_int("max_position_embeddings", d.max_position_embeddings);
  spec.norm = NormKind::RmsNorm;
  spec.norm_eps = config.get_double("rms_norm_eps", d.rms_norm_eps);
  spec.tie_word_embeddings = config.get_bool("tie_word_embeddings", d.tie_word_embeddings);
  spec.bos_token_id = config.has("bos_token_id") ? config.required_int("bos_token_id")
                      : config.json().contains("bos_token_id") ? -1 : d.bos_token_id;
  spec.pad_token_id = config.has("pad_token_id") ? config.required_int("pad_token_id")
                      : config.json().contains("pad_token_id") ? -1 : d.pad_token_id;
  spec.eos_token_ids = config.has("eos_token_id") ? config.get_int_list("eos_token_id")
                       : config.json().contains("eos_token_id") ? std::vector<int64_t>{} : d.eos_token_ids;
  spec.sliding_window.assign(static_cast<size_t>(spec.num_layers), 0);
  spec.is_moe.assign(static_cast<size_t>(spec.num_layers), false);
  spec.attention_scale = spec.head_dim > 0 ? 1.0 / std::sqrt(static_cast<double>(spec.head_dim)) : 0.0;
  spec.positions = PositionKind::Rope;
  parse_rope(config, spec, d.rope_theta);
}

namespace {

double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

// transformers v5 writes `rope_parameters` {rope_type, rope_theta, ...}; v4 configs have
// `rope_theta` at the top level and `rope_scaling` {type|rope_type, factor, ...}. Priority as in
// transformers: values inside the dict, then top-level keys, then the class default.
void parse_rope(const ConfigReader& config, ModelSpec& spec, double default_theta) {
  nlohmann::json params = nlohmann::json::object();
  std::string dict_key;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const nlohmann::json* value = config.find(key);
    if (!value) continue;
    if (!value->is_object()) config.fail_key(key, "must be an object");
    if (value->empty()) continue;
    params = *value;
    dict_key = key;
    break;
  }
  for (const char* nested : {"full_attention", "sliding_attention"})
    if (params.contains(nested))
      config.fail_key(dict_key, "holds per-layer-type RoPE parameters, which moeforge does not support yet");
  auto num = [&](const char* key, std::optional<double> fallback) -> std::optional<double> {
    auto it = params.find(key);
    if (it != params.end() && !it->is_null()) return config.as_double(*it, dict_key + "." + key);
    return fallback;
  };
  RopeSpec& rope = spec.rope;
  rope = RopeSpec{};
  rope.theta = *num("rope_theta", config.get_double("rope_theta", default_theta));
  rope.partial_rotary_factor = *num("partial_rotary_factor", config.get_double("partial_rotary_factor", 1.0));
  std::string type = "default";
  if (params.contains("rope_type") && params["rope_type"].is_string()) type = params["rope_type"].get<std::string>();
  else if (params.contains("type") && params["type"].is_string()) type = params["type"].get<std::string>();

  const int64_t original_default = config.get_int("original_max_position_embeddings", spec.max_position_embeddings);
  auto original = [&] {
    // Top-level original_max_position_embeddings wins (Phi3 habit), as in standardize_rope_params.
    if (config.has("original_max_position_embeddings")) return original_default;
    auto value = num("original_max_position_embeddings", std::nullopt);
    return value ? static_cast<int64_t>(*value) : original_default;
  };
  if (type == "default") {
    rope.scaling = RopeScaling::None;
  } else if (type == "linear" || type == "dynamic") {
    rope.scaling = type == "linear" ? RopeScaling::Linear : RopeScaling::Dynamic;
    auto factor = num("factor", std::nullopt);
    if (!factor) config.fail_key(dict_key, cat("has rope_type '", type, "' but no 'factor'"));
    rope.factor = *factor;
  } else if (type == "llama3") {
    rope.scaling = RopeScaling::Llama3;
    auto factor = num("factor", std::nullopt);
    if (!factor) config.fail_key(dict_key, "has rope_type 'llama3' but no 'factor'");
    rope.factor = *factor;
    rope.low_freq_factor = *num("low_freq_factor", 1.0);
    rope.high_freq_factor = *num("high_freq_factor", 4.0);
    rope.original_max_position_embeddings = original();
  } else if (type == "yarn") {
    rope.scaling = RopeScaling::Yarn;
    rope.original_max_position_embeddings = original();
    auto factor = num("factor", std::nullopt);
    rope.factor = factor ? *factor
                         : static_cast<double>(spec.max_position_embeddings) /
                               static_cast<double>(rope.original_max_position_embeddings);
    // `beta_fast or 32` in transformers: 0 falls back as well.
    double beta_fast = *num("beta_fast", 32.0), beta_slow = *num("beta_slow", 1.0);
    rope.beta_fast = beta_fast != 0 ? beta_fast : 32.0;
    rope.beta_slow = beta_slow != 0 ? beta_slow : 1.0;
    auto truncate = params.find("truncate");
    rope.truncate = truncate == params.end() || truncate->is_null() ? true : truncate->get<bool>();
    rope.mscale = *num("mscale", 0.0);
    rope.mscale_all_dim = *num("mscale_all_dim", 0.0);
    auto attention_factor = num("attention_factor", std::nullopt);
    if (attention_factor) rope.attention_factor = *attention_factor;
    else if (rope.mscale != 0 && rope.mscale_all_dim != 0)
      rope.attention_factor = yarn_mscale(rope.factor, rope.mscale) / yarn_mscale(rope.factor, rope.mscale_all_dim);
    else rope.attention_factor = yarn_mscale(rope.factor, 1.0);
  } else {
    config.fail_key(dict_key, cat("has rope_type '", type,
                                  "', which moeforge does not support (supported: default, linear, dynamic, llama3, yarn)"));
  }
}

void apply_generation_config(const nlohmann::json& gen, const std::string& label, ModelSpec& spec) {
  ConfigReader reader(gen, label, spec.model_type);
  if (reader.has("bos_token_id")) spec.bos_token_id = reader.required_int("bos_token_id");
  if (reader.has("pad_token_id")) spec.pad_token_id = reader.required_int("pad_token_id");
  if (reader.has("eos_token_id")) spec.eos_token_ids = reader.get_int_list("eos_token_id");
}

void parse_expert_counts(const ConfigReader& config, ModelSpec& spec,
                         std::initializer_list<const char*> expert_keys, int64_t default_experts,
                         int64_t default_top_k) {
  std::string key = config.first_present(expert_keys);
  if (key.empty()) key = *expert_keys.begin();
  spec.moe.num_experts = config.get_int(key, default_experts);
  spec.moe.top_k = config.get_int("num_experts_per_tok", default_top_k);
  if (spec.moe.num_experts < 0) config.fail_key(key, "must not be negative");
  if (spec.moe.num_experts > 0 && spec.moe.top_k < 1)
    fail("num_experts_per_tok (", spec.moe.top_k, ") must be at least 1 in ", config.family(), " config ",
         config.label());
  if (spec.moe.top_k > spec.moe.num_experts && spec.moe.num_experts > 0)
    fail("num_experts_per_tok (", spec.moe.top_k, ") > ", key, " (", spec.moe.num_experts, ") in ",
         config.family(), " config ", config.label());
}

void parse_qwen_sparse_layers(const ConfigReader& config, ModelSpec& spec) {
  int64_t step = config.get_int("decoder_sparse_step", 1);
  if (step < 1) config.fail_key("decoder_sparse_step", cat("must be at least 1, got ", step));
  std::vector<int64_t> dense_layers = config.get_int_list("mlp_only_layers");
  for (int64_t l : dense_layers)
    if (l < 0 || l >= spec.num_layers)
      config.fail_key("mlp_only_layers", cat("names layer ", l, " but the model has ", spec.num_layers, " layers"));
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    bool dense = std::find(dense_layers.begin(), dense_layers.end(), l) != dense_layers.end();
    spec.is_moe[l] = !dense && spec.moe.num_experts > 0 && (l + 1) % step == 0;
  }
}

int64_t window_or_default(const ConfigReader& config, const std::string& key, int64_t fallback) {
  if (!config.json().contains(key)) return fallback;
  int64_t window = config.get_int(key, 0);  // explicit null = no window
  if (window < 0) config.fail_key(key, cat("must not be negative, got ", window));
  return window;
}

void expect_string(const ConfigReader& config, const std::string& key, const std::string& fallback,
                   std::initializer_list<const char*> supported) {
  std::string value = config.get_string(key, fallback);
  for (const char* ok : supported)
    if (value == ok) return;
  config.fail_key(key, cat("is '", value, "', which moeforge does not support for this family"));
}

void apply_layer_types(const ConfigReader& config, ModelSpec& spec, const std::vector<std::string>& types,
                       int64_t window) {
  if (static_cast<int64_t>(types.size()) != spec.num_layers)
    config.fail_key("layer_types", cat("has ", types.size(), " entries but num_hidden_layers is ", spec.num_layers));
  for (size_t l = 0; l < types.size(); ++l) {
    if (types[l] == "sliding_attention") spec.sliding_window[l] = window;
    else if (types[l] == "full_attention") spec.sliding_window[l] = 0;
    else config.fail_key("layer_types", cat("has unknown entry '", types[l], "' at layer ", l));
  }
}

void parse_qwen_sliding_windows(const ConfigReader& config, ModelSpec& spec) {
  bool use = config.get_bool("use_sliding_window", false);
  int64_t window = use ? window_or_default(config, "sliding_window", 4096) : 0;
  if (config.has("layer_types")) {
    apply_layer_types(config, spec, config.get_string_list("layer_types"), window);
    return;
  }
  int64_t max_window_layers = config.get_int("max_window_layers", 28);
  for (int64_t l = 0; l < spec.num_layers; ++l) spec.sliding_window[l] = l >= max_window_layers ? window : 0;
}

NameTable llama_style_names() {
  return {
      {TensorRole::Embed, "model.embed_tokens.weight"},
      {TensorRole::FinalNorm, "model.norm.weight"},
      {TensorRole::LmHead, "lm_head.weight"},
      {TensorRole::AttnNorm, "model.layers.{l}.input_layernorm.weight"},
      {TensorRole::FfnNorm, "model.layers.{l}.post_attention_layernorm.weight"},
      {TensorRole::Q, "model.layers.{l}.self_attn.q_proj.weight"},
      {TensorRole::QBias, "model.layers.{l}.self_attn.q_proj.bias"},
      {TensorRole::K, "model.layers.{l}.self_attn.k_proj.weight"},
      {TensorRole::KBias, "model.layers.{l}.self_attn.k_proj.bias"},
      {TensorRole::V, "model.layers.{l}.self_attn.v_proj.weight"},
      {TensorRole::VBias, "model.layers.{l}.self_attn.v_proj.bias"},
      {TensorRole::O, "model.layers.{l}.self_attn.o_proj.weight"},
      {TensorRole::OBias, "model.layers.{l}.self_attn.o_proj.bias"},
      {TensorRole::QNorm, "model.layers.{l}.self_attn.q_norm.weight"},
      {TensorRole::KNorm, "model.layers.{l}.self_attn.k_norm.weight"},
      {TensorRole::MlpGate, "model.layers.{l}.mlp.gate_proj.weight"},
      {TensorRole::MlpGateBias, "model.layers.{l}.mlp.gate_proj.bias"},
      {TensorRole::MlpUp, "model.layers.{l}.mlp.up_proj.weight"},
      {TensorRole::MlpUpBias, "model.layers.{l}.mlp.up_proj.bias"},
      {TensorRole::MlpDown, "model.layers.{l}.mlp.down_proj.weight"},
      {TensorRole::MlpDownBias, "model.layers.{l}.mlp.down_proj.bias"},
  };
}

NameTable sparse_moe_names() {
  NameTable table = llama_style_names();
  table[TensorRole::Router] = "model.layers.{l}.mlp.gate.weight";
  table[TensorRole::ExpertGate] = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight";
  table[TensorRole::ExpertUp] = "model.layers.{l}.mlp.experts.{e}.up_proj.weight";
  table[TensorRole::ExpertDown] = "model.layers.{l}.mlp.experts.{e}.down_proj.weight";
  table[TensorRole::ExpertsGateUp] = "model.layers.{l}.mlp.experts.gate_up_proj";
  table[TensorRole::ExpertsDown] = "model.layers.{l}.mlp.experts.down_proj";
  return table;
}

void parse_softmax_topk_moe(const ConfigReader& config, ModelSpec& spec, double default_aux_coef) {
  MoeSpec& moe = spec.moe;
  moe.router = RouterKind::SoftmaxThenTopK;
  moe.norm_topk_prob = config.get_bool("norm_topk_prob", false);
  moe.router_aux_loss_coef = config.get_double("router_aux_loss_coef", default_aux_coef);
  moe.layout = ExpertLayout::PerExpert;
}

nlohmann::json tiny_llama_config() {
  return {{"vocab_size", 512},          {"hidden_size", 64},          {"intermediate_size", 128},
          {"num_hidden_layers", 2},     {"num_attention_heads", 4},   {"num_key_value_heads", 2},
          {"max_position_embeddings", 512}, {"rms_norm_eps", 1e-6},   {"hidden_act", "silu"},
          {"tie_word_embeddings", false}, {"bos_token_id", 1},        {"eos_token_id", 2},
          {"initializer_range", 0.02},  {"use_cache", true}};
}

nlohmann::json with_keys(nlohmann::json base, const nlohmann::json& extra) {
  base.update(extra);
  return base;
}

void write_qwen_moe_keys(nlohmann::json& c, const ModelSpec& dense, const MoeConfigRequest& r) {
  c["num_experts"] = r.num_experts;
  c["moe_intermediate_size"] = r.expert_width;
  c["intermediate_size"] = dense.intermediate_size;
  c["norm_topk_prob"] = r.renormalize;
  c["decoder_sparse_step"] = 1;
  std::vector<int64_t> dense_layers;
  for (int64_t l = 0, i = 0; l < dense.num_layers; ++l) {
    if (i < static_cast<int64_t>(r.moe_layers.size()) && r.moe_layers[i] == l) ++i;
    else dense_layers.push_back(l);
  }
  c["mlp_only_layers"] = dense_layers;
}

}  // namespace moeforge
