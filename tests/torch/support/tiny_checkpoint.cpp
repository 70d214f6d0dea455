#include "support/tiny_checkpoint.h"

#include <random>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "io/checkpoint_writer.h"

namespace moeforge::test {

nlohmann::json tiny_config(const std::string& model_type, const nlohmann::json& extra) {
  nlohmann::json config = {{"model_type", model_type}, {"vocab_size", 97}, {"hidden_size", 32},
                           {"intermediate_size", 48}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                           {"num_key_value_heads", 2}, {"max_position_embeddings", 128}, {"rms_norm_eps", 1e-6},
                           {"tie_word_embeddings", false}};
  if (model_type == "mixtral") config.update({{"num_local_experts", 4}, {"num_experts_per_tok", 2}});
  if (model_type == "gpt_oss")
    config.update({{"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"head_dim", 8}, {"sliding_window", 4},
                   {"intermediate_size", 32}, {"layer_types", {"sliding_attention", "full_attention"}}});
  if (model_type == "deepseek_v3")  // latent attention, a dense first layer, grouped sigmoid routing
    config.update({{"n_routed_experts", 4}, {"num_experts_per_tok", 2}, {"n_group", 2}, {"topk_group", 1},
                   {"moe_intermediate_size", 16}, {"first_k_dense_replace", 1}, {"num_key_value_heads", 4},
                   {"q_lora_rank", 16}, {"kv_lora_rank", 8}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4},
                   {"v_head_dim", 12}, {"routed_scaling_factor", 2.5}});
  if (model_type == "gpt_neo_moe")  // learned positions, local/global attention, GELU experts with biases
    config.update({{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 16}, {"window_size", 4},
                   {"attention_types", nlohmann::json::parse(R"([[["global", "local"], 1]])")}, {"norm_topk_prob", true}});
  config.update(extra);
  return config;
}

void write_tiny_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config, uint64_t seed, float std,
                           const TensorOverride& override_fn) {
  ModelSpec spec = spec_from_config(config, nullptr, "tiny config");
  std::vector<ExpectedTensor> tensors = expected_tensors(spec);
  std::vector<TensorDecl> decls;
  for (const auto& t : tensors) decls.push_back({t.name, t.dtypes.empty() ? DType::F32 : t.dtypes.front(), t.shape});
  for (auto& d : decls)
    if (d.dtype != DType::U8) d.dtype = DType::F32;
  CheckpointWriter writer(dir, decls);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, std);
  for (const auto& d : decls) {
    const uint64_t count = d.num_bytes() / dtype_size(d.dtype);
    std::vector<float> values(count);
    const bool is_norm = d.name.find("norm") != std::string::npos || d.name.find("ln_") != std::string::npos;
    for (auto& v : values) v = is_norm && d.shape.size() == 1 ? 1.0f + normal(rng) : normal(rng);
    if (override_fn) override_fn(d.name, values);
    writer.write(d.name, ByteView{reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float)});
  }
  writer.add_file("config.json", config.dump(2));
  writer.commit();
}

}  // namespace moeforge::test
