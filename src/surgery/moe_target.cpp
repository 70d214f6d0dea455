// Output configs and compatibility checks for dense -> MoE surgery (see moe_target.h).
#include "surgery/moe_target.h"

#include "common/error.h"
#include "common/strings.h"

namespace moeforge::surgery {
namespace {

const char* architecture(const std::string& family) {
  if (family == "mixtral") return "MixtralForCausalLM";
  if (family == "qwen3_moe") return "Qwen3MoeForCausalLM";
  if (family == "qwen2_moe") return "Qwen2MoeForCausalLM";
  if (family == "olmoe") return "OlmoeForCausalLM";
  fail("--to: '", family, "' is not an upcycling target; choose mixtral, qwen3_moe, qwen2_moe or olmoe");
}

}  // namespace

nlohmann::json moe_target_config(const nlohmann::json& dense_config, const ModelSpec& dense, const MoeTargetOptions& o) {
  const char* arch = architecture(o.family);
  if (dense.model_type == "gpt_neo")
    fail("cannot upcycle gpt_neo: no Hugging Face family holds a GPT-Neo MoE (learned positions, LayerNorm, "
         "gelu MLP); convert it to a llama-style model first");
  if (dense.has_moe()) fail(dense.source, ": is already a MoE model (", dense.model_type, "); use `moeforge grow`");
  if (o.num_experts < 1) fail("--experts must be at least 1");
  if (o.top_k < 1 || o.top_k > o.num_experts) fail("--top-k ", o.top_k, " must be in [1, --experts ", o.num_experts, "]");
  const bool all_layers = static_cast<int64_t>(o.moe_layers.size()) == dense.num_layers;
  if (!all_layers && (o.family == "mixtral" || o.family == "olmoe"))
    fail("--layers: ", o.family, " has no dense layers; upcycle every layer or use --to qwen3_moe / qwen2_moe");
  if (!o.renormalize && o.family == "mixtral") fail("--no-renormalize: mixtral always renormalises the top-k weights");
  if (o.shared_expert_width > 0 && o.family != "qwen2_moe")
    fail("--shared-expert: only the qwen2_moe target has a native shared expert");

  nlohmann::json c = dense_config;
  // Families default differently (Mixtral theta 1e6, eps 1e-5): make the source's values explicit.
  if (!c.contains("rope_theta") && !c.contains("rope_parameters") && !c.contains("rope_scaling"))
    c["rope_theta"] = dense.rope.theta;
  if (!c.contains("rms_norm_eps")) c["rms_norm_eps"] = dense.norm_eps;
  if (!c.contains("tie_word_embeddings")) c["tie_word_embeddings"] = dense.tie_word_embeddings;
  if (!c.contains("max_position_embeddings")) c["max_position_embeddings"] = dense.max_position_embeddings;
  for (const char* key : {"auto_map", "architectures", "mlp_bias", "num_local_experts", "num_experts",
                          "moe_intermediate_size", "shared_expert_intermediate_size", "mlp_only_layers",
                          "decoder_sparse_step", "norm_topk_prob", "output_router_logits", "router_jitter_noise",
                          "quantization_config"})
    c.erase(key);
  // Keys the dense config left to its family's defaults must be spelled out: the target family's
  // defaults differ (e.g. Llama rope_theta 1e4 and rms_norm_eps 1e-6 vs Mixtral 1e6 and 1e-5).
  if (!c.contains("rope_parameters") && !c.contains("rope_theta")) c["rope_theta"] = dense.rope.theta;
  if (!c.contains("rms_norm_eps")) c["rms_norm_eps"] = dense.norm_eps;
  if (!c.contains("tie_word_embeddings")) c["tie_word_embeddings"] = dense.tie_word_embeddings;
  if (!c.contains("max_position_embeddings")) c["max_position_embeddings"] = dense.max_position_embeddings;
  if (!c.contains("head_dim")) c["head_dim"] = dense.head_dim;
  c["model_type"] = o.family;
  c["architectures"] = {arch};
  c["num_experts_per_tok"] = o.top_k;
  c["output_router_logits"] = false;
  if (!c.contains("router_aux_loss_coef")) c["router_aux_loss_coef"] = o.family == "olmoe" ? 0.01 : 0.001;
  if (o.family == "mixtral" || o.family == "olmoe") {
    c[o.family == "mixtral" ? "num_local_experts" : "num_experts"] = o.num_experts;
    c["intermediate_size"] = o.expert_width;
    if (o.family == "olmoe") {
      c["norm_topk_prob"] = o.renormalize;
      c["attention_bias"] = dense.qkv_bias;
      c["clip_qkv"] = nullptr;
    }
  } else {
    c["num_experts"] = o.num_experts;
    c["moe_intermediate_size"] = o.expert_width;
    c["intermediate_size"] = dense.intermediate_size;
    c["norm_topk_prob"] = o.renormalize;
    c["decoder_sparse_step"] = 1;
    std::vector<int64_t> dense_layers;
    for (int64_t l = 0, i = 0; l < dense.num_layers; ++l) {
      if (i < static_cast<int64_t>(o.moe_layers.size()) && o.moe_layers[i] == l) ++i;
      else dense_layers.push_back(l);
    }
    c["mlp_only_layers"] = dense_layers;
    if (o.family == "qwen2_moe") {
      c["shared_expert_intermediate_size"] = o.shared_expert_width;
      c["qkv_bias"] = dense.qkv_bias;
    } else {
      c["attention_bias"] = dense.qkv_bias;
    }
  }
  return c;
}

std::vector<std::string> check_target(const ModelSpec& d, const ModelSpec& o) {
  std::vector<std::string> warnings;
  auto bad = [&](const std::string& field, const std::string& src, const std::string& dst) {
    fail("cannot convert ", d.model_type, " (", d.source, ") to ", o.model_type, ": ", field, " is ", src, " in the source but ",
         dst, " in ", o.model_type, "; choose another --to");
  };
  auto yes = [](bool b) { return std::string(b ? "on" : "off"); };
  if (d.hidden_size != o.hidden_size || d.num_layers != o.num_layers || d.num_heads != o.num_heads ||
      d.num_kv_heads != o.num_kv_heads || d.head_dim != o.head_dim || d.vocab_size != o.vocab_size)
    bad("the attention geometry", "one thing", "another (config keys not understood)");
  if (d.qkv_bias != o.qkv_bias) bad("q/k/v bias", yes(d.qkv_bias), yes(o.qkv_bias));
  if (d.o_bias != o.o_bias) bad("o_proj bias", yes(d.o_bias), yes(o.o_bias));
  if (d.norm != o.norm) bad("the norm", to_string(d.norm), to_string(o.norm));
  if (d.activation != o.activation) bad("the activation", to_string(d.activation), to_string(o.activation));
  if (d.positions != o.positions) bad("positions", to_string(d.positions), to_string(o.positions));
  if (d.rope.theta != o.rope.theta || d.rope.scaling != o.rope.scaling || d.rope.factor != o.rope.factor)
    bad("RoPE", cat("theta ", d.rope.theta, " ", to_string(d.rope.scaling)), cat("theta ", o.rope.theta, " ", to_string(o.rope.scaling)));
  if (d.sliding_window != o.sliding_window) {
    std::vector<std::string> a, b;
    for (int64_t w : d.sliding_window) a.push_back(std::to_string(w));
    for (int64_t w : o.sliding_window) b.push_back(std::to_string(w));
    bad("sliding_window per layer", "[" + join(a, ",") + "]", "[" + join(b, ",") + "]");
  }
  if (d.tie_word_embeddings != o.tie_word_embeddings) bad("tie_word_embeddings", yes(d.tie_word_embeddings), yes(o.tie_word_embeddings));
  if (d.norm_eps != o.norm_eps) bad("the norm epsilon", std::to_string(d.norm_eps), std::to_string(o.norm_eps));
  if (d.mlp_bias) bad("the MLP bias", "on", "off");
  if (d.qk_norm != o.qk_norm) {
    if (d.qk_norm != QkNorm::None) bad("q/k norm", to_string(d.qk_norm), to_string(o.qk_norm));
    warnings.push_back(cat(o.model_type, " always applies q/k RMSNorm (", to_string(o.qk_norm), "); ", d.model_type,
                           " has none, so q_norm/k_norm are created as ones and attention changes: the output is not "
                           "equivalent to the source"));
  }
  return warnings;
}

}  // namespace moeforge::surgery
