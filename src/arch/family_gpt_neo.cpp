// GPT-Neo (dense): learned positions, LayerNorm (weight + bias), no 1/sqrt(d) attention scaling,
// global/local (window_size 256) attention per attention_layers, MLP c_fc -> gelu_new -> c_proj
// with biases, tied embeddings by default.
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"
#include "arch/gpt_neo_common.h"

namespace moeforge::families {
namespace {

// attention_types [[["global", "local"], 12]] -> ["global", "local", "global", ...] (24 entries).
std::vector<std::string> expand_attention_types(const ConfigReader& config) {
  const nlohmann::json* types = config.find("attention_types");
  if (!types) return {};
  std::vector<std::string> out;
  auto bad = [&] { config.fail_key("attention_types", "must look like [[[\"global\", \"local\"], 12]]"); };
  if (!types->is_array()) bad();
  for (const auto& item : *types) {
    if (!item.is_array() || item.size() != 2 || !item[0].is_array() || !item[1].is_number_integer()) bad();
    // bounded before expanding: a corrupt repeat count must not loop or allocate without limit
    int64_t repeat = item[1].get<int64_t>();
    if (repeat < 0 || repeat > kMaxLayers)
      config.fail_key("attention_types", cat("repeat count ", item[1].dump(), " is not between 0 and ", kMaxLayers));
    for (int64_t r = 0; r < repeat; ++r)
      for (const auto& kind : item[0]) {
        if (!kind.is_string()) bad();
        if (static_cast<int64_t>(out.size()) >= kMaxLayers)
          config.fail_key("attention_types", cat("describes more than ", kMaxLayers, " layers"));
        out.push_back(kind.get<std::string>());
      }
  }
  return out;
}

}  // namespace

void parse_gpt_neo_base(const ConfigReader& config, ModelSpec& spec) {
  // GPTNeoConfig names: num_layers / num_heads (num_hidden_layers / num_attention_heads aliased).
  std::string layers_key = config.first_present({"num_layers", "num_hidden_layers"});
  std::string heads_key = config.first_present({"num_heads", "num_attention_heads"});
  spec.hidden_size = config.required_int("hidden_size");
  spec.num_layers = config.required_int(layers_key.empty() ? "num_layers" : layers_key);
  spec.num_heads = config.required_int(heads_key.empty() ? "num_heads" : heads_key);
  spec.vocab_size = config.required_int("vocab_size");
  check_num_layers(config, layers_key.empty() ? "num_layers" : layers_key, spec.num_layers);
  if (spec.num_heads <= 0) config.fail_key(heads_key, "must be positive");
  spec.num_kv_heads = spec.num_heads;
  spec.head_dim = spec.hidden_size / spec.num_heads;
  spec.intermediate_size = config.get_int("intermediate_size", 4 * spec.hidden_size);
  spec.max_position_embeddings = config.get_int("max_position_embeddings", 2048);
  spec.norm = NormKind::LayerNorm;
  spec.norm_eps = config.get_double("layer_norm_epsilon", 1e-5);
  expect_string(config, "activation_function", "gelu_new", {"gelu_new"});
  spec.activation = Activation::GeluNew;
  spec.mlp_bias = true;
  spec.qkv_bias = false;
  spec.o_bias = true;
  spec.attention_scale = 1.0;  // GPT-Neo does not scale q.k by 1/sqrt(head_dim)
  spec.positions = PositionKind::Learned;
  spec.rope = RopeSpec{};
  spec.tie_word_embeddings = config.get_bool("tie_word_embeddings", true);
  auto token = [&](const char* key, int64_t fallback) {
    return config.has(key) ? config.required_int(key) : config.json().contains(key) ? -1 : fallback;
  };
  spec.bos_token_id = token("bos_token_id", 50256);
  spec.pad_token_id = token("pad_token_id", -1);
  spec.eos_token_ids = config.has("eos_token_id") ? config.get_int_list("eos_token_id")
                       : config.json().contains("eos_token_id") ? std::vector<int64_t>{}
                                                                : std::vector<int64_t>{50256};
  spec.is_moe.assign(static_cast<size_t>(spec.num_layers), false);

  std::vector<std::string> kinds = config.has("attention_layers") ? config.get_string_list("attention_layers")
                                                                   : expand_attention_types(config);
  if (kinds.empty()) {  // GPTNeoConfig default [[["global", "local"], 12]]
    for (int64_t l = 0; l < spec.num_layers; ++l) kinds.push_back(l % 2 == 0 ? "global" : "local");
  }
  if (static_cast<int64_t>(kinds.size()) != spec.num_layers)
    config.fail_key("attention_layers", cat("describes ", kinds.size(), " layers but num_layers is ", spec.num_layers));
  int64_t window = config.get_int("window_size", 256);
  spec.sliding_window.assign(static_cast<size_t>(spec.num_layers), 0);
  for (size_t l = 0; l < kinds.size(); ++l) {
    if (kinds[l] == "local") spec.sliding_window[l] = window;
    else if (kinds[l] != "global") config.fail_key("attention_layers", cat("has unknown kind '", kinds[l], "'"));
  }
}

NameTable gpt_neo_names() {
  return {
      {TensorRole::Embed, "transformer.wte.weight"},
      {TensorRole::PositionEmbed, "transformer.wpe.weight"},
      {TensorRole::FinalNorm, "transformer.ln_f.weight"},
      {TensorRole::FinalNormBias, "transformer.ln_f.bias"},
      {TensorRole::LmHead, "lm_head.weight"},
      {TensorRole::AttnNorm, "transformer.h.{l}.ln_1.weight"},
      {TensorRole::AttnNormBias, "transformer.h.{l}.ln_1.bias"},
      {TensorRole::FfnNorm, "transformer.h.{l}.ln_2.weight"},
      {TensorRole::FfnNormBias, "transformer.h.{l}.ln_2.bias"},
      {TensorRole::Q, "transformer.h.{l}.attn.attention.q_proj.weight"},
      {TensorRole::K, "transformer.h.{l}.attn.attention.k_proj.weight"},
      {TensorRole::V, "transformer.h.{l}.attn.attention.v_proj.weight"},
      {TensorRole::O, "transformer.h.{l}.attn.attention.out_proj.weight"},
      {TensorRole::OBias, "transformer.h.{l}.attn.attention.out_proj.bias"},
      {TensorRole::MlpUp, "transformer.h.{l}.mlp.c_fc.weight"},
      {TensorRole::MlpUpBias, "transformer.h.{l}.mlp.c_fc.bias"},
      {TensorRole::MlpDown, "transformer.h.{l}.mlp.c_proj.weight"},
      {TensorRole::MlpDownBias, "transformer.h.{l}.mlp.c_proj.bias"},
  };
}

nlohmann::json gpt_neo_init_config() {
  return nlohmann::json{{"vocab_size", 512},     {"hidden_size", 64},       {"num_layers", 2},
                        {"num_heads", 4},        {"intermediate_size", 256}, {"max_position_embeddings", 512},
                        {"attention_types", nlohmann::json::parse(R"([[["global", "local"], 1]])")},
                        {"window_size", 64},     {"activation_function", "gelu_new"},
                        {"layer_norm_epsilon", 1e-5}, {"tie_word_embeddings", true},
                        {"bos_token_id", 1},     {"eos_token_id", 2},       {"initializer_range", 0.02}};
}

namespace {

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "GPTNeoForCausalLM";
  w.upcycle_only_to = "gpt_neo_moe";  // no Hugging Face MoE family has learned positions and a GELU MLP
  w.init_config = gpt_neo_init_config;
  return w;
}

}  // namespace

const FamilyAdapter& gpt_neo() {
  static const FamilyAdapter adapter{"gpt_neo", "GPT-Neo (dense, learned positions, local/global attention)",
                                     parse_gpt_neo_base, gpt_neo_names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
