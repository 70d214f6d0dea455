// ModelSummary as JSON (`moeforge info --json`) and as a readable table.
#include <nlohmann/json.hpp>
#include <sstream>

#include "arch/model_summary.h"
#include "common/error.h"
#include "common/strings.h"

namespace moeforge {

nlohmann::json summary_to_json(const ModelSummary& s) {
  const ModelSpec& p = s.spec;
  nlohmann::json j;
  j["directory"] = s.directory;
  j["family"] = p.model_type;
  j["num_layers"] = p.num_layers;
  j["num_moe_layers"] = p.num_moe_layers();
  j["hidden_size"] = p.hidden_size;
  j["intermediate_size"] = p.intermediate_size;
  j["num_heads"] = p.num_heads;
  j["num_kv_heads"] = p.num_kv_heads;
  j["head_dim"] = p.head_dim;
  j["vocab_size"] = p.vocab_size;
  j["max_position_embeddings"] = p.max_position_embeddings;
  j["norm"] = to_string(p.norm);
  j["norm_eps"] = p.norm_eps;
  j["activation"] = to_string(p.activation);
  j["positions"] = to_string(p.positions);
  if (p.positions == PositionKind::Rope) {
    j["rope"] = {{"theta", p.rope.theta}, {"scaling", to_string(p.rope.scaling)}, {"factor", p.rope.factor},
                 {"partial_rotary_factor", p.rope.partial_rotary_factor}};
    if (p.rope.scaling == RopeScaling::Yarn || p.rope.scaling == RopeScaling::Llama3)
      j["rope"]["original_max_position_embeddings"] = p.rope.original_max_position_embeddings;
    if (p.rope.scaling == RopeScaling::Yarn) j["rope"]["attention_factor"] = p.rope.attention_factor;
  }
  j["qkv_bias"] = p.qkv_bias;
  j["o_bias"] = p.o_bias;
  j["qk_norm"] = to_string(p.qk_norm);
  j["attention_sinks"] = p.attention_sinks;
  j["sliding_window"] = p.sliding_window;
  j["tie_word_embeddings"] = p.tie_word_embeddings;
  j["bos_token_id"] = p.bos_token_id;
  j["eos_token_ids"] = p.eos_token_ids;
  j["pad_token_id"] = p.pad_token_id;
  j["num_experts"] = p.moe.num_experts;
  j["top_k"] = p.moe.top_k;
  j["num_shared_experts"] = p.moe.num_shared_experts;
  if (p.has_moe()) {
    std::vector<int64_t> moe_layers;
    for (int64_t l = 0; l < p.num_layers; ++l)
      if (p.is_moe[l]) moe_layers.push_back(l);
    j["moe"] = {{"moe_layers", moe_layers},
                {"moe_intermediate_size", p.moe.moe_intermediate_size},
                {"router", to_string(p.moe.router)},
                {"router_bias", p.moe.router_bias},
                {"norm_topk_prob", p.moe.norm_topk_prob},
                {"router_aux_loss_coef", p.moe.router_aux_loss_coef},
                {"expert_layout", to_string(p.moe.layout)},
                {"shared_intermediate_size", p.moe.shared_intermediate_size},
                {"shared_gate", to_string(p.moe.shared_gate)}};
  }
  j["total_params"] = s.total_params;
  j["active_params"] = s.active_params;
  j["routed_expert_params"] = s.routed_expert_params;
  j["embedding_params"] = s.embedding_params;
  j["num_tensors"] = s.num_tensors;
  j["dtypes"] = s.dtype_tensor_counts;
  j["dtype_bytes"] = s.dtype_bytes;
  j["bytes_on_disk"] = s.bytes_on_disk;
  j["memory"] = {{"fp32_weight_bytes", s.fp32_weight_bytes},
                 {"bf16_weight_bytes", s.bf16_weight_bytes},
                 {"bf16_packed_mxfp4_weight_bytes", s.packed_bf16_weight_bytes},
                 {"formula", "total_params x bytes per value (4 fp32, 2 bf16); weights only, no activations or KV cache"}};
  j["warnings"] = s.warnings;
  return j;
}

std::string summary_to_table(const ModelSummary& s) {
  const ModelSpec& p = s.spec;
  std::ostringstream out;
  auto row = [&](const std::string& key, const std::string& value) {
    out << "  " << key << std::string(key.size() < 22 ? 22 - key.size() : 1, ' ') << value << "\n";
  };
  auto num = [](auto v) { return std::to_string(v); };
  out << s.directory << "\n";
  row("family", p.model_type);
  row("layers", p.has_moe() ? cat(p.num_layers, " (", p.num_moe_layers(), " MoE)") : num(p.num_layers));
  row("hidden size", num(p.hidden_size));
  row("heads / kv / head_dim", cat(p.num_heads, " / ", p.num_kv_heads, " / ", p.head_dim));
  if (p.num_moe_layers() < p.num_layers) row("dense MLP width", num(p.intermediate_size));
  row("vocab", num(p.vocab_size));
  row("positions", p.positions == PositionKind::Learned
                       ? cat("learned (", p.max_position_embeddings, ")")
                       : cat("rope theta ", p.rope.theta, ", scaling ", to_string(p.rope.scaling)));
  row("norm / activation", cat(to_string(p.norm), " / ", to_string(p.activation)));
  if (p.has_moe()) {
    row("experts / top-k", cat(p.moe.num_experts, " / ", p.moe.top_k, " (width ", p.moe.moe_intermediate_size, ")"));
    row("router", cat(to_string(p.moe.router), p.moe.norm_topk_prob ? ", renormalised" : ""));
    row("shared experts", p.moe.num_shared_experts > 0
                              ? cat(p.moe.num_shared_experts, " (width ", p.moe.shared_intermediate_size, ", gate ",
                                    to_string(p.moe.shared_gate), ")")
                              : std::string("0"));
    row("expert layout", to_string(p.moe.layout));
  }
  row("tied embeddings", p.tie_word_embeddings ? "yes" : "no");
  row("parameters", cat(human_count(s.total_params), " (", s.total_params, ")"));
  row("active per token", cat(human_count(s.active_params), " (", s.active_params, ")"));
  std::string dtypes;
  for (const auto& [name, count] : s.dtype_tensor_counts)
    dtypes += cat(dtypes.empty() ? "" : ", ", name, " x", count, " (", human_bytes(s.dtype_bytes.at(name)), ")");
  row("tensors", cat(s.num_tensors, ": ", dtypes));
  row("on disk", human_bytes(s.bytes_on_disk));
  row("weights in fp32", human_bytes(s.fp32_weight_bytes));
  row("weights in bf16", human_bytes(s.bf16_weight_bytes));
  if (s.packed_bf16_weight_bytes)
    row("bf16, MXFP4 packed", cat(human_bytes(s.packed_bf16_weight_bytes), " (stats/eval/generate default; --dequantize: bf16 above)"));
  out << "  (memory = parameters x 4 bytes (fp32) or x 2 (bf16); weights only)\n";
  for (const std::string& w : s.warnings) out << "warning: " << w << "\n";
  return out.str();
}

}  // namespace moeforge
