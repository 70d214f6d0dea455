// Config parsing per family: defaults as transformers' config classes, derived values, errors.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "common/error.h"
#include "test_util.h"

namespace moeforge {
namespace {

using nlohmann::json;

json base(const std::string& type) {
  return json{{"model_type", type}, {"hidden_size", 64},  {"num_hidden_layers", 4},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 300},
              {"intermediate_size", 96}};
}

ModelSpec parse(const json& config, const json* generation = nullptr) {
  return spec_from_config(config, generation, "/m/config.json");
}

TEST(ArchConfig, LlamaDefaults) {
  json c = base("llama");
  c.erase("num_key_value_heads");  // LlamaConfig: defaults to num_attention_heads
  ModelSpec s = parse(c);
  EXPECT_EQ(s.num_kv_heads, 4);
  EXPECT_EQ(s.head_dim, 16);
  EXPECT_EQ(s.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(s.rope.theta, 10000.0);
  EXPECT_EQ(s.rope.scaling, RopeScaling::None);
  EXPECT_EQ(s.bos_token_id, 1);
  EXPECT_EQ(s.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_FALSE(s.tie_word_embeddings);
  EXPECT_FALSE(s.has_moe());
  EXPECT_DOUBLE_EQ(s.attention_scale, 0.25);
  EXPECT_EQ(s.sliding_window, std::vector<int64_t>(4, 0));
}

TEST(ArchConfig, NullMeansDerived) {
  json c = base("qwen3");
  c["head_dim"] = nullptr;  // transformers writes null: derive hidden / heads
  c["num_key_value_heads"] = nullptr;
  ModelSpec s = parse(c);
  EXPECT_EQ(s.head_dim, 16);
  EXPECT_EQ(s.num_kv_heads, 4);
  c.erase("head_dim");  // absent: Qwen3Config default 128
  s = parse(c);
  EXPECT_EQ(s.head_dim, 128);
  c.erase("num_key_value_heads");  // absent: Qwen3Config default 32, which 4 heads cannot share
  MOEFORGE_EXPECT_ERROR(parse(c), "num_attention_heads (4) is not a multiple of num_key_value_heads (32)");
}

TEST(ArchConfig, GenerationConfigWins) {
  json c = base("llama");
  json g = {{"eos_token_id", {128001, 128009}}, {"bos_token_id", 128000}};
  ModelSpec s = parse(c, &g);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{128001, 128009}));
  EXPECT_EQ(s.bos_token_id, 128000);
}

TEST(ArchConfig, RopeV4AndV5Spellings) {
  json c = base("llama");
  c["rope_theta"] = 500000.0;
  c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelSpec s = parse(c);
  EXPECT_DOUBLE_EQ(s.rope.theta, 500000.0);
  EXPECT_EQ(s.rope.scaling, RopeScaling::Llama3);
  EXPECT_EQ(s.rope.original_max_position_embeddings, 8192);
  json v5 = base("llama");
  v5["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 1234.0}, {"factor", 2.0}};
  s = parse(v5);
  EXPECT_DOUBLE_EQ(s.rope.theta, 1234.0);
  EXPECT_EQ(s.rope.scaling, RopeScaling::Linear);
  EXPECT_DOUBLE_EQ(s.rope.factor, 2.0);
  v5["rope_parameters"] = {{"rope_type", "longrope"}};
  MOEFORGE_EXPECT_ERROR(parse(v5), "rope_type 'longrope'");
}

TEST(ArchConfig, YarnAttentionFactor) {
  json c = base("llama");
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 512}};
  ModelSpec s = parse(c);
  EXPECT_NEAR(s.rope.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);
  EXPECT_TRUE(s.rope.truncate);
  EXPECT_DOUBLE_EQ(s.rope.beta_fast, 32.0);
  c["rope_parameters"]["mscale"] = 1.0;
  c["rope_parameters"]["mscale_all_dim"] = 1.0;
  EXPECT_NEAR(parse(c).rope.attention_factor, 1.0, 1e-12);
}

TEST(ArchConfig, MistralAndQwen2SlidingWindows) {
  json m = base("mistral");
  EXPECT_EQ(parse(m).sliding_window, std::vector<int64_t>(4, 4096));  // MistralConfig default
  m["sliding_window"] = nullptr;
  EXPECT_EQ(parse(m).sliding_window, std::vector<int64_t>(4, 0));
  json q = base("qwen2");
  q["sliding_window"] = 32;
  q["max_window_layers"] = 2;
  EXPECT_EQ(parse(q).sliding_window, std::vector<int64_t>(4, 0));  // use_sliding_window false
  q["use_sliding_window"] = true;
  EXPECT_EQ(parse(q).sliding_window, (std::vector<int64_t>{0, 0, 32, 32}));
  q["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "sliding_attention"};
  EXPECT_EQ(parse(q).sliding_window, (std::vector<int64_t>{32, 0, 0, 32}));
  q["layer_types"] = {"sliding_attention"};
  MOEFORGE_EXPECT_ERROR(parse(q), "'layer_types' has 1 entries but num_hidden_layers is 4");
}

TEST(ArchConfig, Qwen2MoeSparseLayersAndSharedExpert) {
  json c = base("qwen2_moe");
  c["num_experts"] = 8;
  c["num_experts_per_tok"] = 2;
  c["moe_intermediate_size"] = 32;
  c["shared_expert_intermediate_size"] = 48;
  c["decoder_sparse_step"] = 2;
  c["mlp_only_layers"] = {3};
  ModelSpec s = parse(c);
  EXPECT_EQ(s.is_moe, (std::vector<bool>{false, true, false, false}));
  EXPECT_TRUE(s.qkv_bias);
  EXPECT_FALSE(s.o_bias);
  EXPECT_EQ(s.moe.num_shared_experts, 1);
  EXPECT_EQ(s.moe.shared_gate, SharedGateKind::SigmoidGate);
  EXPECT_FALSE(s.moe.norm_topk_prob);
  c["mlp_only_layers"] = {7};
  MOEFORGE_EXPECT_ERROR(parse(c), "'mlp_only_layers' names layer 7");
}

TEST(ArchConfig, ExpertCountAliasesAndTopKCheck) {
  json c = base("qwen3_moe");
  c["num_local_experts"] = 8;  // what transformers 5 writes back for Qwen3-MoE
  c["num_experts_per_tok"] = 2;
  EXPECT_EQ(parse(c).moe.num_experts, 8);
  json m = base("mixtral");
  m["num_local_experts"] = 8;
  m["num_experts_per_tok"] = 9;
  MOEFORGE_EXPECT_ERROR(parse(m), "num_experts_per_tok (9) > num_local_experts (8) in mixtral config /m/config.json");
}

// Found by fuzz_config: a huge layer count sized the per-layer tables before any check (out of memory).
TEST(ArchConfig, LayerCountIsBounded) {
  json m = base("mixtral");
  m["num_hidden_layers"] = 9181837417;
  MOEFORGE_EXPECT_ERROR(parse(m), "key 'num_hidden_layers' must be between 1 and 65536, got 9181837417");
  m["num_hidden_layers"] = 0;
  MOEFORGE_EXPECT_ERROR(parse(m), "key 'num_hidden_layers' must be between 1 and 65536, got 0");
  json n = base("gpt_neo");
  n.erase("num_hidden_layers");
  n["num_layers"] = 70000;
  n["num_heads"] = 4;
  n["attention_types"] = json::array({json::array({json::array({"global"}), 70000})});
  MOEFORGE_EXPECT_ERROR(parse(n), "key 'num_layers' must be between 1 and 65536, got 70000");
  n["num_layers"] = 4;  // attention_types repeat counts are bounded before expanding
  n["attention_types"] = json::array({json::array({json::array(), 9181837417})});
  MOEFORGE_EXPECT_ERROR(parse(n), "key 'attention_types' repeat count 9181837417 is not between 0 and 65536");
  n["attention_types"] = json::array({json::array({json::array({"global", "local"}), 40000})});
  MOEFORGE_EXPECT_ERROR(parse(n), "key 'attention_types' describes more than 65536 layers");
  m["num_hidden_layers"] = 65536;  // the limit itself is fine
  EXPECT_EQ(parse(m).num_layers, 65536);
}

TEST(ArchConfig, MixtralAndOlmoeDefaults) {
  ModelSpec m = parse(base("mixtral"));
  EXPECT_EQ(m.moe.num_experts, 8);
  EXPECT_EQ(m.moe.top_k, 2);
  EXPECT_TRUE(m.moe.norm_topk_prob);
  EXPECT_DOUBLE_EQ(m.rope.theta, 1e6);
  EXPECT_DOUBLE_EQ(m.norm_eps, 1e-5);
  EXPECT_EQ(m.moe.moe_intermediate_size, 96);
  json o = base("olmoe");
  o["num_experts"] = 16;
  ModelSpec s = parse(o);
  EXPECT_EQ(s.moe.top_k, 8);
  EXPECT_FALSE(s.moe.norm_topk_prob);
  EXPECT_DOUBLE_EQ(s.moe.router_aux_loss_coef, 0.01);
  EXPECT_EQ(s.qk_norm, QkNorm::WholeProjection);
  EXPECT_EQ(role_shape(s, TensorRole::KNorm), std::vector<int64_t>{32});  // kv heads x head_dim
  EXPECT_EQ(role_shape(s, TensorRole::QNorm), std::vector<int64_t>{64});
  EXPECT_EQ(s.pad_token_id, 1);
}

TEST(ArchConfig, GptOss) {
  json c = base("gpt_oss");
  c["num_local_experts"] = 4;
  c["num_experts_per_tok"] = 2;
  ModelSpec s = parse(c);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.sliding_window, (std::vector<int64_t>{128, 0, 128, 0}));
  EXPECT_EQ(s.rope.scaling, RopeScaling::Yarn);
  EXPECT_DOUBLE_EQ(s.rope.factor, 32.0);
  EXPECT_FALSE(s.rope.truncate);
  EXPECT_DOUBLE_EQ(s.rope.theta, 150000.0);
  EXPECT_EQ(s.moe.router, RouterKind::TopKThenSoftmax);
  EXPECT_TRUE(s.moe.router_bias && s.moe.expert_bias && s.attention_sinks && s.qkv_bias && s.o_bias);
  EXPECT_EQ(s.activation, Activation::GptOssClampedGlu);
  EXPECT_EQ(s.moe.layout, ExpertLayout::FusedInterleaved);
  c["quantization_config"] = {{"quant_method", "mxfp4"}};
  EXPECT_EQ(parse(c).moe.layout, ExpertLayout::Mxfp4);
  c["intermediate_size"] = 100;
  MOEFORGE_EXPECT_ERROR(parse(c), "must be a multiple of 32 for MXFP4");
}

TEST(ArchConfig, GptNeo) {
  json c = {{"model_type", "gpt_neo"}, {"hidden_size", 64}, {"num_layers", 3}, {"num_heads", 4}, {"vocab_size", 300},
            {"attention_types", {{{"global", "local"}, 1}, {{"local"}, 1}}}, {"intermediate_size", nullptr}};
  ModelSpec s = parse(c);
  EXPECT_EQ(s.sliding_window, (std::vector<int64_t>{0, 256, 256}));
  EXPECT_EQ(s.intermediate_size, 256);
  EXPECT_EQ(s.norm, NormKind::LayerNorm);
  EXPECT_EQ(s.positions, PositionKind::Learned);
  EXPECT_DOUBLE_EQ(s.attention_scale, 1.0);
  EXPECT_TRUE(s.tie_word_embeddings);
  EXPECT_EQ(s.bos_token_id, 50256);
  std::vector<ExpectedTensor> tensors = expected_tensors(s);
  EXPECT_EQ(tensors.size(), 2u + 3u * 13u + 2u);  // wte, wpe; 13 per layer; ln_f weight + bias
  EXPECT_EQ(tensors[1].name, "transformer.wpe.weight");
}

TEST(ArchConfig, Errors) {
  json c = base("llama");
  c.erase("hidden_size");
  MOEFORGE_EXPECT_ERROR(parse(c), "/m/config.json: missing required key 'hidden_size' (llama)");
  c = base("llama");
  c["intermediate_size"] = "big";
  MOEFORGE_EXPECT_ERROR(parse(c), "key 'intermediate_size' must be an integer, got \"big\" (llama)");
  c = base("llama");
  c["num_key_value_heads"] = 3;
  MOEFORGE_EXPECT_ERROR(parse(c), "num_attention_heads (4) is not a multiple of num_key_value_heads (3)");
  c = base("llama");
  c["hidden_act"] = "relu";
  MOEFORGE_EXPECT_ERROR(parse(c), "key 'hidden_act' is 'relu'");
  c["model_type"] = "bert";
  MOEFORGE_EXPECT_ERROR(parse(c), "unknown model_type 'bert' in /m/config.json; supported: llama, mistral");
  c.erase("model_type");
  MOEFORGE_EXPECT_ERROR(parse(c), "missing required key 'model_type'");
}

TEST(ArchConfig, EveryFamilyParsesAndNamesEveryTensor) {
  // Sweep: each family's minimal config yields a valid spec whose expected tensors all have names
  // and positive shapes (gemma.cpp's "sweep every config through ForEachTensor").
  for (const std::string& type : supported_model_types()) {
    json c = base(type);
    if (type == "gpt_neo") c = {{"model_type", type}, {"hidden_size", 64}, {"num_layers", 2}, {"num_heads", 4}, {"vocab_size", 300}};
    if (type == "gpt_oss" || type == "mixtral" || type == "olmoe" || type == "qwen2_moe" || type == "qwen3_moe") {
      c["num_experts"] = 4;
      c["num_local_experts"] = 4;
      c["num_experts_per_tok"] = 2;
    }
    ModelSpec s = parse(c);
    size_t count = 0;
    for_each_tensor(s, [&](const ExpectedTensor& t) {
      ++count;
      EXPECT_FALSE(t.name.empty());
      EXPECT_EQ(t.name.find('{'), std::string::npos) << t.name;
      for (int64_t d : t.shape) EXPECT_GT(d, 0) << type << " " << t.name;
    });
    EXPECT_GT(count, 10u) << type;
  }
}

}  // namespace
}  // namespace moeforge

namespace moeforge {
namespace {

TEST(ArchConfig, GptOss20bShapeFactsGiveKnownParameterCounts) {
  // The published gpt-oss-20b config (v4 spelling: rope_theta + rope_scaling): 21B total, 3.6B active.
  nlohmann::json c = {{"model_type", "gpt_oss"}, {"num_hidden_layers", 24}, {"num_local_experts", 32},
                      {"experts_per_token", 4}, {"num_experts_per_tok", 4}, {"vocab_size", 201088},
                      {"hidden_size", 2880}, {"intermediate_size", 2880}, {"head_dim", 64},
                      {"num_attention_heads", 64}, {"num_key_value_heads", 8}, {"sliding_window", 128},
                      {"rope_theta", 150000}, {"max_position_embeddings", 131072},
                      {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 32.0}, {"beta_fast", 32.0},
                                        {"beta_slow", 1.0}, {"truncate", false},
                                        {"original_max_position_embeddings", 4096}}},
                      {"quantization_config", {{"quant_method", "mxfp4"}}}, {"eos_token_id", 200002}};
  ModelSpec s = spec_from_config(c, nullptr, "gpt-oss-20b/config.json");
  uint64_t total = 0, routed = 0;
  for_each_tensor(s, [&](const ExpectedTensor& t) {
    total += t.logical_params;
    if (t.routed_experts) routed += t.logical_params;
  });
  const uint64_t active = total - routed / 32 * 28;
  EXPECT_GT(total, 20.8e9);
  EXPECT_LT(total, 21.0e9);
  // moeforge's active count keeps the embedding and lm_head; OpenAI's 3.6B leaves the unembedding out.
  const uint64_t unembedding = 201088ull * 2880;
  EXPECT_GT(active - unembedding, 3.55e9);
  EXPECT_LT(active - unembedding, 3.65e9);
  EXPECT_EQ(s.sliding_window[0], 128);
  EXPECT_EQ(s.sliding_window[1], 0);
  EXPECT_NEAR(s.rope.attention_factor, 0.1 * std::log(32.0) + 1.0, 1e-12);
}

TEST(ArchConfig, SequencesBeyondTheTrainedPositionsAreRefused) {
  json c = base("llama");
  c["max_position_embeddings"] = 128;
  const ModelSpec rope = parse(c);
  check_sequence_length(rope, 128, "train: phase 'p' seq_len", false);
  MOEFORGE_EXPECT_ERROR(check_sequence_length(rope, 129, "train: phase 'p' seq_len", false),
                        "train: phase 'p' seq_len: 129 tokens exceed /m/config.json's max_position_embeddings 128 (positions past it "
                        "were never trained; --allow-long-seq");
  check_sequence_length(rope, 4096, "stats", true);  // RoPE extrapolation by choice
  json n = {{"model_type", "gpt_neo"}, {"hidden_size", 64}, {"num_layers", 2}, {"num_heads", 4}, {"vocab_size", 300},
            {"max_position_embeddings", 64}};
  const ModelSpec learned = parse(n);
  MOEFORGE_EXPECT_ERROR(check_sequence_length(learned, 65, "eval: --block-size", true),
                        "eval: --block-size: 65 tokens exceed /m/config.json's max_position_embeddings 64 (learned positions");
}

}  // namespace
}  // namespace moeforge
