// Output configs and compatibility checks for dense -> MoE surgery (see moe_target.h).
#include "surgery/moe_target.h"

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/strings.h"

namespace moeforge::surgery {
namespace {

// Families whose writer satisfies `pred`, in registry order: "a, b or c" / "a / b".
template <typename Pred>
std::string families_where(Pred pred, const char* last_separator) {
  std::vector<std::string> names;
  for (const FamilyAdapter* family : all_adapters())
    if (pred(family->writer)) names.push_back(family->model_type);
  if (names.size() < 2) return join(names, "");
  const std::string last = names.back();
  names.pop_back();
  return join(names, ", ") + last_separator + last;
}

// The target family's adapter; throws listing the targets when `family` is none.
const FamilyAdapter& target_family(const std::string& family) {
  const FamilyAdapter* adapter = find_adapter(family);
  if (!adapter || !adapter->writer.write_moe_keys)
    fail("--to: '", family, "' is not an upcycling target; choose ",
         families_where([](const FamilyWriter& w) { return w.write_moe_keys != nullptr; }, " or "));
  return *adapter;
}

}  // namespace

nlohmann::json moe_target_config(const nlohmann::json& dense_config, const ModelSpec& dense, const MoeTargetOptions& o) {
  const FamilyWriter& target = target_family(o.family).writer;
  if (const FamilyAdapter* source = find_adapter(dense.model_type);
      source && source->writer.upcycle_only_to && o.family != source->writer.upcycle_only_to)
    fail("--to ", o.family, ": a ", dense.model_type, " model (", source->description, ") can only become a --to ",
         source->writer.upcycle_only_to, " MoE");
  if (dense.has_moe()) fail(dense.source, ": is already a MoE model (", dense.model_type, "); use `moeforge grow`");
  if (o.num_experts < 1) fail("--experts must be at least 1");
  if (o.top_k < 1 || o.top_k > o.num_experts) fail("--top-k ", o.top_k, " must be in [1, --experts ", o.num_experts, "]");
  const bool all_layers = static_cast<int64_t>(o.moe_layers.size()) == dense.num_layers;
  if (!all_layers && !target.keeps_dense_layers)
    fail("--layers: ", o.family, " has no dense layers; upcycle every layer or use --to ",
         families_where([](const FamilyWriter& w) { return w.write_moe_keys && w.keeps_dense_layers; }, " / "));
  if (!o.renormalize && target.always_renormalizes) fail("--no-renormalize: ", o.family, " always renormalises the top-k weights");
  if (o.shared_expert_width > 0 && !target.shared_expert_width_key)
    fail("--shared-expert: only the ",
         families_where([](const FamilyWriter& w) { return w.write_moe_keys && w.shared_expert_width_key; }, " or "),
         " target has a native shared expert");

  nlohmann::json c = dense_config;
  for (const char* key : {"auto_map", "architectures", "mlp_bias", "num_local_experts", "num_experts",
                          "moe_intermediate_size", "shared_expert_intermediate_size", "mlp_only_layers",
                          "decoder_sparse_step", "norm_topk_prob", "output_router_logits", "router_jitter_noise",
                          "quantization_config"})
    c.erase(key);
  // Keys the dense config left to its family's defaults must be spelled out: the target family's
  // defaults differ (e.g. Llama rope_theta 1e4 and rms_norm_eps 1e-6 vs Mixtral 1e6 and 1e-5).
  const bool rope = dense.positions == PositionKind::Rope, rms = dense.norm == NormKind::RmsNorm;
  if (rope && !c.contains("rope_parameters") && !c.contains("rope_theta")) c["rope_theta"] = dense.rope.theta;
  if (rms && !c.contains("rms_norm_eps")) c["rms_norm_eps"] = dense.norm_eps;
  if (!c.contains("tie_word_embeddings")) c["tie_word_embeddings"] = dense.tie_word_embeddings;
  if (!c.contains("max_position_embeddings")) c["max_position_embeddings"] = dense.max_position_embeddings;
  if (rope && !c.contains("head_dim")) c["head_dim"] = dense.head_dim;
  c["model_type"] = o.family;
  c["architectures"] = {target.architecture};
  c["num_experts_per_tok"] = o.top_k;
  c["output_router_logits"] = false;
  if (!c.contains("router_aux_loss_coef")) c["router_aux_loss_coef"] = target.default_aux_loss_coef;
  MoeConfigRequest request;
  request.num_experts = o.num_experts;
  request.top_k = o.top_k;
  request.expert_width = o.expert_width;
  request.renormalize = o.renormalize;
  request.moe_layers = o.moe_layers;
  request.shared_expert_width = o.shared_expert_width;
  target.write_moe_keys(c, dense, request);
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
  if (d.mlp_bias && !o.moe.expert_bias) bad("the MLP bias", "on", "off");
  if (d.qk_norm != o.qk_norm) {
    if (d.qk_norm != QkNorm::None) bad("q/k norm", to_string(d.qk_norm), to_string(o.qk_norm));
    warnings.push_back(cat(o.model_type, " always applies q/k RMSNorm (", to_string(o.qk_norm), "); ", d.model_type,
                           " has none, so q_norm/k_norm are created as ones and attention changes: the output is not "
                           "equivalent to the source"));
  }
  return warnings;
}

}  // namespace moeforge::surgery
