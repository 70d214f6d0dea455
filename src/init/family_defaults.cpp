// Tiny default configs per family for `moeforge init` (small enough for tests and demos, with each
// family's features on: GQA, MoE with several experts, q/k norms, sliding windows where native).
#include <map>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/strings.h"
#include "init/random_init.h"

namespace moeforge::init {
namespace {

using Json = nlohmann::json;

Json llama_like() {
  return {{"vocab_size", 512},          {"hidden_size", 64},          {"intermediate_size", 128},
          {"num_hidden_layers", 2},     {"num_attention_heads", 4},   {"num_key_value_heads", 2},
          {"max_position_embeddings", 512}, {"rms_norm_eps", 1e-6},   {"hidden_act", "silu"},
          {"tie_word_embeddings", false}, {"bos_token_id", 1},        {"eos_token_id", 2},
          {"initializer_range", 0.02},  {"use_cache", true}};
}

Json with(Json base, const Json& extra) {
  base.update(extra);
  return base;
}

const std::map<std::string, std::pair<std::string, Json (*)()>>& table() {
  static const std::map<std::string, std::pair<std::string, Json (*)()>> families = {
      {"llama", {"LlamaForCausalLM", [] { return with(llama_like(), {{"rope_theta", 10000.0}}); }}},
      {"mistral", {"MistralForCausalLM", [] { return with(llama_like(), {{"sliding_window", nullptr}}); }}},
      {"qwen2", {"Qwen2ForCausalLM", [] { return with(llama_like(), {{"use_sliding_window", false}}); }}},
      {"qwen3", {"Qwen3ForCausalLM", [] { return with(llama_like(), {{"head_dim", 16}, {"use_sliding_window", false}}); }}},
      {"gpt_neo",
       {"GPTNeoForCausalLM",
        [] {
          return Json{{"vocab_size", 512},     {"hidden_size", 64},       {"num_layers", 2},
                      {"num_heads", 4},        {"intermediate_size", 256}, {"max_position_embeddings", 512},
                      {"attention_types", Json::parse(R"([[["global", "local"], 1]])")},
                      {"window_size", 64},     {"activation_function", "gelu_new"},
                      {"layer_norm_epsilon", 1e-5}, {"tie_word_embeddings", true},
                      {"bos_token_id", 1},     {"eos_token_id", 2},       {"initializer_range", 0.02}};
        }}},
      {"mixtral",
       {"MixtralForCausalLM",
        [] { return with(llama_like(), {{"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"sliding_window", nullptr}}); }}},
      {"qwen2_moe",
       {"Qwen2MoeForCausalLM",
        [] {
          return with(llama_like(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 64},
                                     {"shared_expert_intermediate_size", 128}, {"decoder_sparse_step", 1},
                                     {"mlp_only_layers", Json::array()}, {"norm_topk_prob", false},
                                     {"use_sliding_window", false}});
        }}},
      {"qwen3_moe",
       {"Qwen3MoeForCausalLM",
        [] {
          return with(llama_like(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 64},
                                     {"head_dim", 16}, {"decoder_sparse_step", 1}, {"mlp_only_layers", Json::array()},
                                     {"norm_topk_prob", true}, {"use_sliding_window", false}});
        }}},
      {"olmoe",
       {"OlmoeForCausalLM",
        [] { return with(llama_like(), {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"intermediate_size", 64}}); }}},
      {"gpt_oss",
       {"GptOssForCausalLM",
        [] {
          Json c = with(llama_like(), {{"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"intermediate_size", 64},
                                       {"head_dim", 16}, {"sliding_window", 64}, {"rms_norm_eps", 1e-5},
                                       {"attention_bias", true}});
          // YaRN as GPT-OSS uses it, with a factor matching 512 / 128 positions.
          c["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 150000.0}, {"factor", 4.0},
                                  {"beta_fast", 32.0}, {"beta_slow", 1.0}, {"truncate", false},
                                  {"original_max_position_embeddings", 128}};
          c.erase("hidden_act");
          return c;
        }}},
  };
  return families;
}

}  // namespace

Json default_config(const std::string& family) {
  auto it = table().find(family);
  if (it == table().end()) {
    std::vector<std::string> names;
    for (const auto& [name, entry] : table()) names.push_back(name);
    fail("init: unknown family '", family, "'; supported: ", join(names, ", "));
  }
  Json c = it->second.second();
  c["model_type"] = family;
  c["architectures"] = Json::array({it->second.first});
  return c;
}

}  // namespace moeforge::init
