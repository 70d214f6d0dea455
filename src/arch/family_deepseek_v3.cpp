// DeepSeek-V3 / Kimi-K2 (transformers' DeepseekV3ForCausalLM): multi-head latent attention
// (q_a_proj -> q_a_layernorm -> q_b_proj, or q_proj when q_lora_rank is null; kv_a_proj_with_mqa ->
// [latent | shared rope key] -> kv_a_layernorm -> kv_b_proj -> per-head [k_nope | v]), interleaved
// RoPE on the qk_rope_head_dim dims, softmax scale qk_head_dim^-0.5 (x mscale^2 under a scaled RoPE
// with mscale_all_dim); the first first_k_dense_replace layers dense, the others a sigmoid router
// with e_score_correction_bias (selection only), group-limited top-k (n_group / topk_group),
// norm_topk_prob and routed_scaling_factor, per-expert experts and an ungated shared MLP of width
// moe_intermediate_size * n_shared_experts.
#include <cmath>

#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"

namespace moeforge::families {
namespace {

// The key's value: absent -> fallback (the class default), explicit null -> 0 (q_lora_rank: null
// means a plain q_proj).
int64_t int_or_default(const ConfigReader& config, const std::string& key, int64_t fallback) {
  if (!config.json().contains(key)) return fallback;
  return config.get_int(key, 0);
}

double yarn_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// transformers' yarn_apply_mscale: any RoPE type but default with a nonzero mscale_all_dim
// multiplies the softmax scale by get_mscale(factor, mscale_all_dim)^2.
double mscale_squared(const ConfigReader& config, const ModelSpec& spec) {
  if (spec.rope.scaling == RopeScaling::None) return 1.0;
  double mscale_all_dim = spec.rope.mscale_all_dim;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const nlohmann::json* dict = config.find(key);
    if (!dict || !dict->is_object() || dict->empty()) continue;
    auto it = dict->find("mscale_all_dim");
    if (it != dict->end() && !it->is_null()) mscale_all_dim = config.as_double(*it, std::string(key) + ".mscale_all_dim");
    break;
  }
  if (mscale_all_dim == 0) return 1.0;
  const double m = yarn_mscale(spec.rope.factor, mscale_all_dim);
  return m * m;
}

void parse(const ConfigReader& config, ModelSpec& spec) {
  BaseDefaults d;  // DeepseekV3Config
  d.intermediate_size = 18432;
  d.max_position_embeddings = 4096;
  d.rms_norm_eps = 1e-6;
  d.rope_theta = 10000.0;
  d.bos_token_id = 0;
  d.eos_token_ids = {1};
  parse_base(config, spec, d);
  expect_string(config, "hidden_act", "silu", {"silu"});
  if (config.get_bool("attention_bias", false))
    config.fail_key("attention_bias", "is true; moeforge supports DeepSeek-V3 latent attention without biases");
  if (config.has("quantization_config"))
    config.fail_key("quantization_config", "is set; moeforge reads unquantised (bf16/fp32) DeepSeek-V3 checkpoints only");

  MlaSpec& mla = spec.mla;
  mla.q_lora_rank = int_or_default(config, "q_lora_rank", 1536);
  mla.kv_lora_rank = config.get_int("kv_lora_rank", 512);
  mla.qk_nope_head_dim = config.get_int("qk_nope_head_dim", 128);
  mla.qk_rope_head_dim = config.get_int("qk_rope_head_dim", 64);
  mla.v_head_dim = config.get_int("v_head_dim", 128);
  mla.rope_interleave = config.get_bool("rope_interleave", true);
  if (mla.kv_lora_rank <= 0) config.fail_key("kv_lora_rank", "must be positive");
  // Every head has its own k/v after kv_b_proj (num_key_value_heads is not used by the layout);
  // RoPE runs on the rope dims only, as the config class's head_dim = qk_rope_head_dim.
  spec.num_kv_heads = spec.num_heads;
  spec.head_dim = mla.qk_rope_head_dim;
  spec.attention_scale = std::pow(static_cast<double>(mla.qk_head_dim()), -0.5) * mscale_squared(config, spec);

  parse_expert_counts(config, spec, {"n_routed_experts", "num_local_experts"}, 256, 8);
  MoeSpec& moe = spec.moe;
  moe.moe_intermediate_size = config.get_int("moe_intermediate_size", 2048);
  moe.router = RouterKind::Sigmoid;
  moe.score_correction_bias = true;
  moe.n_group = int_or_default(config, "n_group", 8);
  moe.topk_group = int_or_default(config, "topk_group", 4);
  if (moe.n_group == 0) moe.n_group = 1;  // null: no group limit
  if (moe.topk_group == 0) moe.topk_group = moe.n_group;
  moe.norm_topk_prob = config.get_bool("norm_topk_prob", true);
  moe.routed_scaling_factor = config.get_double("routed_scaling_factor", 2.5);
  moe.router_aux_loss_coef = config.get_double("router_aux_loss_coef", 0.0);  // aux-loss-free balancing
  moe.layout = ExpertLayout::PerExpert;
  const int64_t shared = int_or_default(config, "n_shared_experts", 1);
  if (shared < 0) config.fail_key("n_shared_experts", "must not be negative");
  moe.num_shared_experts = moe.num_experts > 0 && shared > 0 ? 1 : 0;  // n shared experts = one MLP n times wide
  moe.shared_intermediate_size = moe.num_shared_experts ? moe.moe_intermediate_size * shared : 0;
  moe.shared_gate = SharedGateKind::None;

  const int64_t first_dense = int_or_default(config, "first_k_dense_replace", 3);
  if (first_dense < 0) config.fail_key("first_k_dense_replace", "must not be negative");
  // The original remote code also had moe_layer_freq; transformers ignores it, so only 1 matches.
  if (config.get_int("moe_layer_freq", 1) != 1)
    config.fail_key("moe_layer_freq", "is not 1; transformers' DeepseekV3 makes every layer from first_k_dense_replace on MoE");
  for (int64_t l = 0; l < spec.num_layers; ++l) spec.is_moe[l] = moe.num_experts > 0 && l >= first_dense;
}

NameTable names() {
  NameTable table = sparse_moe_names();
  for (TensorRole role : {TensorRole::QBias, TensorRole::K, TensorRole::KBias, TensorRole::V, TensorRole::VBias,
                          TensorRole::OBias, TensorRole::QNorm, TensorRole::KNorm})
    table.erase(role);
  table[TensorRole::QA] = "model.layers.{l}.self_attn.q_a_proj.weight";
  table[TensorRole::QANorm] = "model.layers.{l}.self_attn.q_a_layernorm.weight";
  table[TensorRole::QB] = "model.layers.{l}.self_attn.q_b_proj.weight";
  table[TensorRole::KvA] = "model.layers.{l}.self_attn.kv_a_proj_with_mqa.weight";
  table[TensorRole::KvANorm] = "model.layers.{l}.self_attn.kv_a_layernorm.weight";
  table[TensorRole::KvB] = "model.layers.{l}.self_attn.kv_b_proj.weight";
  table[TensorRole::ScoreCorrectionBias] = "model.layers.{l}.mlp.gate.e_score_correction_bias";
  table[TensorRole::SharedGate] = "model.layers.{l}.mlp.shared_experts.gate_proj.weight";
  table[TensorRole::SharedUp] = "model.layers.{l}.mlp.shared_experts.up_proj.weight";
  table[TensorRole::SharedDown] = "model.layers.{l}.mlp.shared_experts.down_proj.weight";
  return table;
}

// `moeforge init --family deepseek_v3`: tiny, with the family's features on (q LoRA, latent kv,
// a dense first layer, grouped routing, a shared expert).
nlohmann::json init_config() {
  return {{"vocab_size", 512},          {"hidden_size", 64},           {"intermediate_size", 128},
          {"moe_intermediate_size", 32}, {"num_hidden_layers", 3},      {"first_k_dense_replace", 1},
          {"num_attention_heads", 4},   {"num_key_value_heads", 4},    {"n_routed_experts", 8},
          {"num_experts_per_tok", 2},   {"n_group", 2},                {"topk_group", 1},
          {"n_shared_experts", 1},      {"norm_topk_prob", true},      {"routed_scaling_factor", 2.5},
          {"q_lora_rank", 32},          {"kv_lora_rank", 16},          {"qk_nope_head_dim", 16},
          {"qk_rope_head_dim", 8},      {"v_head_dim", 16},            {"head_dim", 8},
          {"rope_interleave", true},    {"rope_theta", 10000.0},       {"max_position_embeddings", 512},
          {"rms_norm_eps", 1e-6},       {"hidden_act", "silu"},        {"attention_bias", false},
          {"tie_word_embeddings", false}, {"bos_token_id", 1},         {"eos_token_id", 2},
          {"initializer_range", 0.02},  {"use_cache", true}};
}

FamilyWriter writer() {
  FamilyWriter w;
  w.architecture = "DeepseekV3ForCausalLM";
  w.experts_count_key = "n_routed_experts";
  // Its shared experts are native and ungated, their width moe_intermediate_size x n_shared_experts
  // (no width key of their own); DeepSeek-V3 is no upcycle/merge target (write_moe_keys null).
  w.native_shared_gate = SharedGateKind::None;
  w.default_aux_loss_coef = 0.0;
  w.init_config = init_config;
  return w;
}

}  // namespace

const FamilyAdapter& deepseek_v3() {
  static const FamilyAdapter adapter{"deepseek_v3", "DeepSeek-V3 / Kimi-K2 (latent attention, sigmoid grouped router, shared experts)",
                                     parse, names(), writer()};
  return adapter;
}

}  // namespace moeforge::families
