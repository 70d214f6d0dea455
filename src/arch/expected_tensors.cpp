// Roles, shapes and dtypes implied by a ModelSpec.
#include "arch/expected_tensors.h"

#include "arch/family_adapter.h"
#include "common/error.h"

namespace moeforge {
namespace {

const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> types = {DType::F32, DType::F16, DType::BF16};
  return types;
}

bool is_fused(const ModelSpec& spec) {
  return spec.moe.layout == ExpertLayout::FusedConcat || spec.moe.layout == ExpertLayout::FusedInterleaved;
}

uint64_t numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// Roles in visiting order.
constexpr TensorRole kLayerRoles[] = {
    TensorRole::AttnNorm, TensorRole::AttnNormBias, TensorRole::Q, TensorRole::QBias, TensorRole::K,
    TensorRole::KBias, TensorRole::V, TensorRole::VBias, TensorRole::O, TensorRole::OBias, TensorRole::QNorm,
    TensorRole::KNorm, TensorRole::Sinks, TensorRole::QA, TensorRole::QANorm, TensorRole::QB, TensorRole::KvA,
    TensorRole::KvANorm, TensorRole::KvB, TensorRole::FfnNorm, TensorRole::FfnNormBias, TensorRole::MlpGate,
    TensorRole::MlpGateBias, TensorRole::MlpUp, TensorRole::MlpUpBias, TensorRole::MlpDown,
    TensorRole::MlpDownBias, TensorRole::Router, TensorRole::RouterBias, TensorRole::ScoreCorrectionBias,
    TensorRole::ExpertsGateUp, TensorRole::ExpertsGateUpBias, TensorRole::ExpertsGateUpBlocks,
    TensorRole::ExpertsGateUpScales, TensorRole::ExpertsDown, TensorRole::ExpertsDownBias,
    TensorRole::ExpertsDownBlocks, TensorRole::ExpertsDownScales, TensorRole::SharedGate, TensorRole::SharedUp,
    TensorRole::SharedDown, TensorRole::SharedExpertGate, TensorRole::SharedScale,
};

// One expert's tensors (PerExpert layout), in visiting order.
constexpr TensorRole kPerExpertRoles[] = {TensorRole::ExpertGate, TensorRole::ExpertUp, TensorRole::ExpertDown,
                                          TensorRole::ExpertUpBias, TensorRole::ExpertDownBias};

}  // namespace

std::vector<int64_t> role_shape(const ModelSpec& s, TensorRole role) {
  const int64_t H = s.hidden_size, F = s.intermediate_size, E = s.moe.num_experts;
  const int64_t Fm = s.moe.moe_intermediate_size, Fs = s.moe.shared_intermediate_size;
  const bool interleaved = s.moe.layout == ExpertLayout::FusedInterleaved || s.moe.layout == ExpertLayout::Mxfp4;
  const MlaSpec& mla = s.mla;
  const int64_t nh = s.num_heads;
  switch (role) {
    case TensorRole::Embed: return {s.vocab_size, H};
    case TensorRole::PositionEmbed: return {s.max_position_embeddings, H};
    case TensorRole::FinalNorm: case TensorRole::FinalNormBias: return {H};
    case TensorRole::LmHead: return {s.vocab_size, H};
    case TensorRole::AttnNorm: case TensorRole::AttnNormBias: return {H};
    case TensorRole::FfnNorm: case TensorRole::FfnNormBias: return {H};
    case TensorRole::Q: return {mla.enabled() ? nh * mla.qk_head_dim() : s.q_dim(), H};
    case TensorRole::QBias: return {s.q_dim()};
    case TensorRole::K: case TensorRole::V: return {s.kv_dim(), H};
    case TensorRole::KBias: case TensorRole::VBias: return {s.kv_dim()};
    case TensorRole::O: return {H, mla.enabled() ? nh * mla.v_head_dim : s.q_dim()};
    case TensorRole::OBias: return {H};
    case TensorRole::QNorm: return {s.qk_norm == QkNorm::WholeProjection ? s.q_dim() : s.head_dim};
    case TensorRole::KNorm: return {s.qk_norm == QkNorm::WholeProjection ? s.kv_dim() : s.head_dim};
    case TensorRole::Sinks: return {s.num_heads};
    case TensorRole::QA: return {mla.q_lora_rank, H};
    case TensorRole::QANorm: return {mla.q_lora_rank};
    case TensorRole::QB: return {nh * mla.qk_head_dim(), mla.q_lora_rank};
    case TensorRole::KvA: return {mla.kv_lora_rank + mla.qk_rope_head_dim, H};
    case TensorRole::KvANorm: return {mla.kv_lora_rank};
    case TensorRole::KvB: return {nh * (mla.qk_nope_head_dim + mla.v_head_dim), mla.kv_lora_rank};
    case TensorRole::MlpGate: case TensorRole::MlpUp: return {F, H};
    case TensorRole::MlpGateBias: case TensorRole::MlpUpBias: return {F};
    case TensorRole::MlpDown: return {H, F};
    case TensorRole::MlpDownBias: return {H};
    case TensorRole::Router: return {E, H};
    case TensorRole::RouterBias: case TensorRole::ScoreCorrectionBias: return {E};
    case TensorRole::ExpertGate: case TensorRole::ExpertUp: return {Fm, H};
    case TensorRole::ExpertDown: return {H, Fm};
    case TensorRole::ExpertUpBias: return {Fm};
    case TensorRole::ExpertDownBias: return {H};
    case TensorRole::ExpertsGateUp: return interleaved ? std::vector<int64_t>{E, H, 2 * Fm} : std::vector<int64_t>{E, 2 * Fm, H};
    case TensorRole::ExpertsGateUpBias: return {E, 2 * Fm};
    case TensorRole::ExpertsDown: return interleaved ? std::vector<int64_t>{E, Fm, H} : std::vector<int64_t>{E, H, Fm};
    case TensorRole::ExpertsDownBias: return {E, H};
    case TensorRole::ExpertsGateUpBlocks: return {E, 2 * Fm, H / 32, 16};
    case TensorRole::ExpertsGateUpScales: return {E, 2 * Fm, H / 32};
    case TensorRole::ExpertsDownBlocks: return {E, H, Fm / 32, 16};
    case TensorRole::ExpertsDownScales: return {E, H, Fm / 32};
    case TensorRole::SharedGate: case TensorRole::SharedUp: return {Fs, H};
    case TensorRole::SharedDown: return {H, Fs};
    case TensorRole::SharedExpertGate: return {1, H};
    case TensorRole::SharedScale: return {1};
    case TensorRole::Count: break;
  }
  fail("invalid tensor role");
}

bool spec_has_role(const ModelSpec& s, TensorRole role, int64_t layer) {
  const bool moe_layer = layer >= 0 && layer < static_cast<int64_t>(s.is_moe.size()) && s.is_moe[layer];
  const bool layer_norm = s.norm == NormKind::LayerNorm;
  const bool gated_mlp = s.activation != Activation::GeluNew;
  const ExpertLayout layout = s.moe.layout;
  const bool shared = moe_layer && s.moe.num_shared_experts > 0;
  const bool mla = s.mla.enabled(), q_lora = mla && s.mla.q_lora_rank > 0;
  switch (role) {
    case TensorRole::Embed: case TensorRole::FinalNorm: return true;
    case TensorRole::PositionEmbed: return s.positions == PositionKind::Learned;
    case TensorRole::FinalNormBias: return layer_norm;
    case TensorRole::LmHead: return !s.tie_word_embeddings;
    case TensorRole::AttnNorm: case TensorRole::FfnNorm: case TensorRole::O: return true;
    case TensorRole::Q: return !q_lora;
    case TensorRole::K: case TensorRole::V: return !mla;
    case TensorRole::QA: case TensorRole::QANorm: case TensorRole::QB: return q_lora;
    case TensorRole::KvA: case TensorRole::KvANorm: case TensorRole::KvB: return mla;
    case TensorRole::AttnNormBias: case TensorRole::FfnNormBias: return layer_norm;
    case TensorRole::QBias: case TensorRole::KBias: case TensorRole::VBias: return s.qkv_bias;
    case TensorRole::OBias: return s.o_bias;
    case TensorRole::QNorm: case TensorRole::KNorm: return s.qk_norm != QkNorm::None;
    case TensorRole::Sinks: return s.attention_sinks;
    case TensorRole::MlpGate: return !moe_layer && gated_mlp;
    case TensorRole::MlpGateBias: return !moe_layer && gated_mlp && s.mlp_bias;
    case TensorRole::MlpUp: case TensorRole::MlpDown: return !moe_layer;
    case TensorRole::MlpUpBias: case TensorRole::MlpDownBias: return !moe_layer && s.mlp_bias;
    case TensorRole::Router: return moe_layer;
    case TensorRole::RouterBias: return moe_layer && s.moe.router_bias;
    case TensorRole::ScoreCorrectionBias: return moe_layer && s.moe.score_correction_bias;
    case TensorRole::ExpertGate: return moe_layer && layout == ExpertLayout::PerExpert && gated_mlp;
    case TensorRole::ExpertUp: case TensorRole::ExpertDown: return moe_layer && layout == ExpertLayout::PerExpert;
    case TensorRole::ExpertUpBias: case TensorRole::ExpertDownBias:
      return moe_layer && layout == ExpertLayout::PerExpert && s.moe.expert_bias;
    case TensorRole::ExpertsGateUp: case TensorRole::ExpertsDown: return moe_layer && is_fused(s);
    case TensorRole::ExpertsGateUpBias: case TensorRole::ExpertsDownBias:
      return moe_layer && s.moe.expert_bias && layout != ExpertLayout::PerExpert;
    case TensorRole::ExpertsGateUpBlocks: case TensorRole::ExpertsGateUpScales:
    case TensorRole::ExpertsDownBlocks: case TensorRole::ExpertsDownScales:
      return moe_layer && layout == ExpertLayout::Mxfp4;
    case TensorRole::SharedGate: return shared && gated_mlp;
    case TensorRole::SharedUp: case TensorRole::SharedDown: return shared;
    case TensorRole::SharedExpertGate: return shared && s.moe.shared_gate == SharedGateKind::SigmoidGate;
    case TensorRole::SharedScale: return shared && s.moe.shared_gate == SharedGateKind::LearnedScale;
    case TensorRole::Count: break;
  }
  return false;
}

void for_each_tensor(const ModelSpec& spec, const std::function<void(const ExpectedTensor&)>& visit) {
  auto emit = [&](TensorRole role, int64_t layer, int64_t expert) {
    ExpectedTensor t;
    t.name = tensor_name(spec, role, layer, expert);
    t.role = role;
    t.layer = layer;
    t.expert = expert;
    t.shape = role_shape(spec, role);
    const bool mxfp4_payload = role == TensorRole::ExpertsGateUpBlocks || role == TensorRole::ExpertsDownBlocks;
    const bool mxfp4_scale = role == TensorRole::ExpertsGateUpScales || role == TensorRole::ExpertsDownScales;
    t.dtypes = mxfp4_payload || mxfp4_scale ? std::vector<DType>{DType::U8} : float_dtypes();
    t.logical_params = mxfp4_scale ? 0 : mxfp4_payload ? 2 * numel(t.shape) : numel(t.shape);
    t.routed_experts = expert >= 0 || (role >= TensorRole::ExpertsGateUp && role <= TensorRole::ExpertsDownScales);
    visit(t);
  };
  for (TensorRole role : {TensorRole::Embed, TensorRole::PositionEmbed})
    if (spec_has_role(spec, role, -1)) emit(role, -1, -1);
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    for (TensorRole role : kLayerRoles) {
      if (role == TensorRole::SharedGate) {  // per-expert tensors go right before the shared expert
        for (int64_t e = 0; spec.is_moe[l] && spec.moe.layout == ExpertLayout::PerExpert && e < spec.moe.num_experts; ++e)
          for (TensorRole expert_role : kPerExpertRoles)
            if (spec_has_role(spec, expert_role, l)) emit(expert_role, l, e);
      }
      if (spec_has_role(spec, role, l)) emit(role, l, -1);
    }
  }
  for (TensorRole role : {TensorRole::FinalNorm, TensorRole::FinalNormBias, TensorRole::LmHead})
    if (spec_has_role(spec, role, -1)) emit(role, -1, -1);
}

std::vector<ExpectedTensor> expected_tensors(const ModelSpec& spec) {
  std::vector<ExpectedTensor> out;
  for_each_tensor(spec, [&](const ExpectedTensor& t) { out.push_back(t); });
  return out;
}

}  // namespace moeforge
