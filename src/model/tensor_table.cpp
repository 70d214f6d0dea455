// The runtime tensor table and the sweeps over it (see tensor_table.h).
#include "model/tensor_table.h"

#include <torch/torch.h>

#include "arch/expected_tensors.h"
#include "common/error.h"
#include "common/strings.h"
#include "model/model_weights.h"

namespace moeforge::model {
namespace {

using Role = TensorRole;
using G = TensorGroup;
using S = TensorSource;
using B = TensorBlock;
constexpr Role kNone = Role::Count;

// Accessors: where each entry lives in ModelWeights.
#define MODEL_TENSOR(member) [](ModelWeights& w, int64_t) -> torch::Tensor& { return w.member; }
#define LAYER_TENSOR(member) [](ModelWeights& w, int64_t l) -> torch::Tensor& { return w.layers.at(l).member; }

RuntimeTensor model_tensor(const char* name, G group, Role role, at::Tensor& (*get)(ModelWeights&, int64_t),
                           bool linear = false) {
  return {name, TensorScope::Model, group, S::Role, B::Single, role, kNone, linear, get};
}
RuntimeTensor layer_tensor(const char* name, G group, Role role, at::Tensor& (*get)(ModelWeights&, int64_t),
                           bool linear = false) {
  return {name, TensorScope::Layer, group, S::Role, B::Single, role, kNone, linear, get};
}
// A tensor read with its block (dense MLP / shared expert / routed experts).
RuntimeTensor block_tensor(const char* name, G group, S source, B block, Role role, Role gate_role,
                           at::Tensor& (*get)(ModelWeights&, int64_t), bool linear) {
  return {name, TensorScope::Layer, group, source, block, role, gate_role, linear, get};
}

std::vector<RuntimeTensor> build_table() {
  return {
      model_tensor("embed", G::Embedding, Role::Embed, MODEL_TENSOR(embed)),
      model_tensor("position_embed", G::Embedding, Role::PositionEmbed, MODEL_TENSOR(position_embed)),
      // Per layer: attention.
      layer_tensor("attn_norm", G::Norm, Role::AttnNorm, LAYER_TENSOR(attn_norm)),
      layer_tensor("attn_norm_bias", G::Norm, Role::AttnNormBias, LAYER_TENSOR(attn_norm_bias)),
      layer_tensor("q", G::Attention, Role::Q, LAYER_TENSOR(q), true),
      layer_tensor("q_bias", G::Attention, Role::QBias, LAYER_TENSOR(q_bias)),
      layer_tensor("k", G::Attention, Role::K, LAYER_TENSOR(k), true),
      layer_tensor("k_bias", G::Attention, Role::KBias, LAYER_TENSOR(k_bias)),
      layer_tensor("v", G::Attention, Role::V, LAYER_TENSOR(v), true),
      layer_tensor("v_bias", G::Attention, Role::VBias, LAYER_TENSOR(v_bias)),
      layer_tensor("o", G::Attention, Role::O, LAYER_TENSOR(o), true),
      layer_tensor("o_bias", G::Attention, Role::OBias, LAYER_TENSOR(o_bias)),
      layer_tensor("q_norm", G::Norm, Role::QNorm, LAYER_TENSOR(q_norm)),
      layer_tensor("k_norm", G::Norm, Role::KNorm, LAYER_TENSOR(k_norm)),
      layer_tensor("sinks", G::Attention, Role::Sinks, LAYER_TENSOR(sinks)),
      // Latent attention (DeepSeek-V3): q_a -> q_a_norm -> q_b, kv_a -> kv_a_norm -> kv_b.
      layer_tensor("q_a", G::Attention, Role::QA, LAYER_TENSOR(q_a), true),
      layer_tensor("q_a_norm", G::Norm, Role::QANorm, LAYER_TENSOR(q_a_norm)),
      layer_tensor("q_b", G::Attention, Role::QB, LAYER_TENSOR(q_b), true),
      layer_tensor("kv_a", G::Attention, Role::KvA, LAYER_TENSOR(kv_a), true),
      layer_tensor("kv_a_norm", G::Norm, Role::KvANorm, LAYER_TENSOR(kv_a_norm)),
      layer_tensor("kv_b", G::Attention, Role::KvB, LAYER_TENSOR(kv_b), true),
      // Per layer: FFN norm, then the dense MLP (dense layers) or router + experts (MoE layers).
      layer_tensor("ffn_norm", G::Norm, Role::FfnNorm, LAYER_TENSOR(ffn_norm)),
      layer_tensor("ffn_norm_bias", G::Norm, Role::FfnNormBias, LAYER_TENSOR(ffn_norm_bias)),
      block_tensor("mlp.w_in", G::Mlp, S::GateUpRows, B::DenseMlp, Role::MlpUp, Role::MlpGate, LAYER_TENSOR(mlp.w_in), true),
      block_tensor("mlp.b_in", G::Mlp, S::GateUpRows, B::DenseMlp, Role::MlpUpBias, Role::MlpGateBias,
                   LAYER_TENSOR(mlp.b_in), false),
      block_tensor("mlp.w_out", G::Mlp, S::Role, B::DenseMlp, Role::MlpDown, kNone, LAYER_TENSOR(mlp.w_out), true),
      block_tensor("mlp.b_out", G::Mlp, S::Role, B::DenseMlp, Role::MlpDownBias, kNone, LAYER_TENSOR(mlp.b_out), false),
      layer_tensor("router", G::Router, Role::Router, LAYER_TENSOR(router)),
      layer_tensor("router_bias", G::Router, Role::RouterBias, LAYER_TENSOR(router_bias)),
      layer_tensor("score_correction_bias", G::SelectionBias, Role::ScoreCorrectionBias, LAYER_TENSOR(score_correction_bias)),
      block_tensor("experts.w_in", G::Experts, S::Experts, B::RoutedExperts, Role::ExpertsGateUp, kNone,
                   LAYER_TENSOR(experts.w_in), true),
      block_tensor("experts.b_in", G::Experts, S::Experts, B::RoutedExperts, Role::ExpertsGateUpBias, kNone,
                   LAYER_TENSOR(experts.b_in), false),
      block_tensor("experts.w_out", G::Experts, S::Experts, B::RoutedExperts, Role::ExpertsDown, kNone,
                   LAYER_TENSOR(experts.w_out), true),
      block_tensor("experts.b_out", G::Experts, S::Experts, B::RoutedExperts, Role::ExpertsDownBias, kNone,
                   LAYER_TENSOR(experts.b_out), false),
      block_tensor("shared.w_in", G::SharedExpert, S::GateUpRows, B::SharedExpert, Role::SharedUp, Role::SharedGate,
                   LAYER_TENSOR(shared.w_in), true),
      block_tensor("shared.w_out", G::SharedExpert, S::Role, B::SharedExpert, Role::SharedDown, kNone,
                   LAYER_TENSOR(shared.w_out), true),
      layer_tensor("shared_gate", G::SharedExpert, Role::SharedExpertGate, LAYER_TENSOR(shared_gate)),
      layer_tensor("shared_scale", G::SharedExpert, Role::SharedScale, LAYER_TENSOR(shared_scale)),
      // Model-level tail.
      model_tensor("final_norm", G::Norm, Role::FinalNorm, MODEL_TENSOR(final_norm)),
      model_tensor("final_norm_bias", G::Norm, Role::FinalNormBias, MODEL_TENSOR(final_norm_bias)),
      model_tensor("lm_head", G::LmHead, Role::LmHead, MODEL_TENSOR(lm_head), true),
  };
}

#undef MODEL_TENSOR
#undef LAYER_TENSOR

bool is_model_scope(const RuntimeTensor& t) { return t.scope == TensorScope::Model; }

// Visits entries in the stable order: model-level entries declared before the first per-layer
// one, every layer's entries, then the remaining model-level entries.
template <typename Visit>
void sweep(int64_t num_layers, Visit&& visit) {
  const auto& table = runtime_tensors();
  size_t first_layer = 0;
  while (first_layer < table.size() && is_model_scope(table[first_layer])) ++first_layer;
  for (size_t i = 0; i < first_layer; ++i) visit(table[i], -1);
  for (int64_t l = 0; l < num_layers; ++l)
    for (size_t i = first_layer; i < table.size(); ++i)
      if (!is_model_scope(table[i])) visit(table[i], l);
  for (size_t i = first_layer; i < table.size(); ++i)
    if (is_model_scope(table[i])) visit(table[i], -1);
}

bool is_moe_layer(const ModelSpec& spec, int64_t layer) {
  return layer >= 0 && layer < static_cast<int64_t>(spec.is_moe.size()) && spec.is_moe[layer];
}

}  // namespace

const char* to_string(TensorGroup group) {
  switch (group) {
    case G::Embedding: return "embeddings";
    case G::Norm: return "norms";
    case G::Attention: return "attention";
    case G::Mlp: return "mlp";
    case G::Router: return "router";
    case G::SelectionBias: return "selection_bias";
    case G::Experts: return "experts";
    case G::SharedExpert: return "shared_expert";
    case G::LmHead: return "lm_head";
  }
  return "?";
}

const std::vector<RuntimeTensor>& runtime_tensors() {
  static const std::vector<RuntimeTensor> table = build_table();
  return table;
}

const RuntimeTensor* find_runtime_tensor(const std::string& local_name) {
  for (const RuntimeTensor& t : runtime_tensors())
    if (local_name == t.name) return &t;
  return nullptr;
}

CanonicalName parse_canonical_name(const std::string& name) {
  if (!starts_with(name, "layers.")) return {-1, name};
  const size_t dot = name.find('.', 7);
  const std::string digits = name.substr(7, dot == std::string::npos ? std::string::npos : dot - 7);
  const bool numeric = !digits.empty() && digits.size() < 10 &&
                       digits.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric || dot == std::string::npos || dot + 1 == name.size())
    fail("'", name, "' is not a canonical tensor name (layers.N.NAME or a model-level name)");
  return {std::stoll(digits), name.substr(dot + 1)};
}

std::string canonical_name(int64_t layer, const std::string& local) {
  return layer < 0 ? local : "layers." + std::to_string(layer) + "." + local;
}

bool is_expert_weight_stack(const RuntimeTensor& tensor) {
  return tensor.block == TensorBlock::RoutedExperts &&
         (tensor.role == TensorRole::ExpertsGateUp || tensor.role == TensorRole::ExpertsDown);
}

bool spec_has_tensor(const ModelSpec& spec, const RuntimeTensor& t, int64_t layer) {
  if ((t.scope == TensorScope::Layer) != (layer >= 0)) return false;
  if (t.source == S::Experts) {
    if (!is_moe_layer(spec, layer)) return false;
    const bool bias = t.role == Role::ExpertsGateUpBias || t.role == Role::ExpertsDownBias;
    return !bias || spec.moe.expert_bias;
  }
  return spec_has_role(spec, t.role, layer);
}

std::vector<int64_t> runtime_shape(const ModelSpec& spec, const RuntimeTensor& t, int64_t layer) {
  if (!spec_has_tensor(spec, t, layer))
    fail("internal: ", spec.model_type, " has no runtime tensor '", canonical_name(layer, t.name), "'");
  if (t.source == S::Role) return role_shape(spec, t.role);
  if (t.source == S::GateUpRows) {
    std::vector<int64_t> shape = role_shape(spec, t.role);  // [F, H] or [F]
    if (spec_has_role(spec, t.gate_role, layer)) shape[0] += role_shape(spec, t.gate_role)[0];
    return shape;
  }
  // Stacked routed experts: [E, R, H] / [E, R] in, [E, H, F] / [E, H] out.
  const int64_t E = spec.moe.num_experts, H = spec.hidden_size, F = spec.moe.moe_intermediate_size;
  const int64_t R = spec.activation == Activation::GeluNew ? F : 2 * F;
  switch (t.role) {
    case Role::ExpertsGateUp: return {E, R, H};
    case Role::ExpertsGateUpBias: return {E, R};
    case Role::ExpertsDown: return {E, H, F};
    case Role::ExpertsDownBias: return {E, H};
    default: fail("internal: runtime tensor '", t.name, "' has no expert shape");
  }
}

std::vector<PlannedTensor> planned_tensors(const ModelSpec& spec) {
  std::vector<PlannedTensor> out;
  sweep(spec.num_layers, [&](const RuntimeTensor& t, int64_t layer) {
    if (spec_has_tensor(spec, t, layer)) out.push_back({canonical_name(layer, t.name), &t, layer, runtime_shape(spec, t, layer)});
  });
  return out;
}

void for_each_runtime_tensor(
    ModelWeights& weights,
    const std::function<void(const RuntimeTensor&, int64_t, const std::string&, at::Tensor&)>& visit) {
  sweep(static_cast<int64_t>(weights.layers.size()), [&](const RuntimeTensor& t, int64_t layer) {
    torch::Tensor& tensor = t.get(weights, layer);
    if (!tensor.defined()) return;
    if (t.group == G::LmHead && tensor.is_same(weights.embed)) return;  // tied: it is the embedding
    visit(t, layer, canonical_name(layer, t.name), tensor);
  });
}

}  // namespace moeforge::model
