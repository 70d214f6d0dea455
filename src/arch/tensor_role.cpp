// Role names and the name-template formatter.
#include "arch/tensor_role.h"

#include "common/error.h"

namespace moeforge {

const char* role_name(TensorRole role) {
  switch (role) {
    case TensorRole::Embed: return "embed";
    case TensorRole::PositionEmbed: return "position_embed";
    case TensorRole::FinalNorm: return "final_norm";
    case TensorRole::FinalNormBias: return "final_norm_bias";
    case TensorRole::LmHead: return "lm_head";
    case TensorRole::AttnNorm: return "attn_norm";
    case TensorRole::AttnNormBias: return "attn_norm_bias";
    case TensorRole::FfnNorm: return "ffn_norm";
    case TensorRole::FfnNormBias: return "ffn_norm_bias";
    case TensorRole::Q: return "q";
    case TensorRole::QBias: return "q_bias";
    case TensorRole::K: return "k";
    case TensorRole::KBias: return "k_bias";
    case TensorRole::V: return "v";
    case TensorRole::VBias: return "v_bias";
    case TensorRole::O: return "o";
    case TensorRole::OBias: return "o_bias";
    case TensorRole::QNorm: return "q_norm";
    case TensorRole::KNorm: return "k_norm";
    case TensorRole::Sinks: return "sinks";
    case TensorRole::QA: return "q_a";
    case TensorRole::QANorm: return "q_a_norm";
    case TensorRole::QB: return "q_b";
    case TensorRole::KvA: return "kv_a";
    case TensorRole::KvANorm: return "kv_a_norm";
    case TensorRole::KvB: return "kv_b";
    case TensorRole::MlpGate: return "mlp_gate";
    case TensorRole::MlpGateBias: return "mlp_gate_bias";
    case TensorRole::MlpUp: return "mlp_up";
    case TensorRole::MlpUpBias: return "mlp_up_bias";
    case TensorRole::MlpDown: return "mlp_down";
    case TensorRole::MlpDownBias: return "mlp_down_bias";
    case TensorRole::Router: return "router";
    case TensorRole::RouterBias: return "router_bias";
    case TensorRole::ScoreCorrectionBias: return "score_correction_bias";
    case TensorRole::ExpertGate: return "expert_gate";
    case TensorRole::ExpertUp: return "expert_up";
    case TensorRole::ExpertDown: return "expert_down";
    case TensorRole::ExpertUpBias: return "expert_up_bias";
    case TensorRole::ExpertDownBias: return "expert_down_bias";
    case TensorRole::ExpertsGateUp: return "experts_gate_up";
    case TensorRole::ExpertsGateUpBias: return "experts_gate_up_bias";
    case TensorRole::ExpertsDown: return "experts_down";
    case TensorRole::ExpertsDownBias: return "experts_down_bias";
    case TensorRole::ExpertsGateUpBlocks: return "experts_gate_up_blocks";
    case TensorRole::ExpertsGateUpScales: return "experts_gate_up_scales";
    case TensorRole::ExpertsDownBlocks: return "experts_down_blocks";
    case TensorRole::ExpertsDownScales: return "experts_down_scales";
    case TensorRole::SharedGate: return "shared_gate";
    case TensorRole::SharedUp: return "shared_up";
    case TensorRole::SharedDown: return "shared_down";
    case TensorRole::SharedExpertGate: return "shared_expert_gate";
    case TensorRole::SharedScale: return "shared_scale";
    case TensorRole::Count: break;
  }
  return "invalid";
}

bool role_is_per_layer(TensorRole role) {
  switch (role) {
    case TensorRole::Embed:
    case TensorRole::PositionEmbed:
    case TensorRole::FinalNorm:
    case TensorRole::FinalNormBias:
    case TensorRole::LmHead:
      return false;
    default:
      return true;
  }
}

bool role_is_per_expert(TensorRole role) {
  return role == TensorRole::ExpertGate || role == TensorRole::ExpertUp || role == TensorRole::ExpertDown ||
         role == TensorRole::ExpertUpBias || role == TensorRole::ExpertDownBias;
}

std::string format_tensor_name(const std::string& name_template, int64_t layer, int64_t expert) {
  std::string out;
  out.reserve(name_template.size() + 8);
  for (size_t i = 0; i < name_template.size(); ++i) {
    if (name_template.compare(i, 3, "{l}") == 0) {
      if (layer < 0) fail("tensor name template '", name_template, "' needs a layer index");
      out += std::to_string(layer);
      i += 2;
    } else if (name_template.compare(i, 3, "{e}") == 0) {
      if (expert < 0) fail("tensor name template '", name_template, "' needs an expert index");
      out += std::to_string(expert);
      i += 2;
    } else {
      out += name_template[i];
    }
  }
  return out;
}

}  // namespace moeforge
