#include "model/model_weights.h"

#include <torch/torch.h>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/validate_store.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "tensor/torch_bridge.h"

namespace moeforge::model {

namespace {

using Role = TensorRole;

struct Loader {
  const ModelSpec& spec;
  const CheckpointStore& store;
  const LoadOptions& options;

  torch::Tensor finish(torch::Tensor t, const std::string& name) const {
    if (options.check_finite && t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      fail(store.directory().string(), ": tensor '", name, "' contains NaN or infinite values");
    return t.to(options.device, options.dtype);
  }
  // The tensor of `role` at `layer` when the spec has it, else undefined.
  torch::Tensor role(Role r, int64_t layer = -1) const {
    if (!spec_has_role(spec, r, layer)) return {};
    std::string name = tensor_name(spec, r, layer);
    return finish(load_tensor(store.tensor(name), torch::kFloat32), name);
  }
  torch::Tensor floats(const std::vector<float>& values, std::vector<int64_t> shape, const std::string& what) const {
    if (values.empty()) return {};
    auto t = torch::from_blob(const_cast<float*>(values.data()), shape, torch::kFloat32).clone();
    return finish(t, what);
  }
  // Canonical MLP from gate/up/down vectors: w_in = [gate; up] (or up alone when ungated).
  MlpWeights mlp(const moeforge::ExpertWeights& w, const std::string& what) const {
    const int64_t H = w.hidden_size, F = w.intermediate_size;
    MlpWeights out;
    auto up = floats(w.up, {F, H}, what + " up");
    if (!w.gate.empty()) {
      out.w_in = torch::cat({floats(w.gate, {F, H}, what + " gate"), up}, 0);
      if (!w.gate_bias.empty() || !w.up_bias.empty()) {
        auto gb = w.gate_bias.empty() ? torch::zeros({F}, up.options()) : floats(w.gate_bias, {F}, what + " gate bias");
        auto ub = w.up_bias.empty() ? torch::zeros({F}, up.options()) : floats(w.up_bias, {F}, what + " up bias");
        out.b_in = torch::cat({gb, ub}, 0);
      }
    } else {
      out.w_in = up;
      if (!w.up_bias.empty()) out.b_in = floats(w.up_bias, {F}, what + " up bias");
    }
    out.w_out = floats(w.down, {H, F}, what + " down");
    if (!w.down_bias.empty()) out.b_out = floats(w.down_bias, {H}, what + " down bias");
    return out;
  }
};

}  // namespace

ModelWeights load_model_weights(const ModelSpec& spec, const CheckpointStore& store, const LoadOptions& options) {
  validate_store(spec, store);
  Loader load{spec, store, options};
  ModelWeights w;
  w.embed = load.role(Role::Embed);
  w.position_embed = load.role(Role::PositionEmbed);
  w.final_norm = load.role(Role::FinalNorm);
  w.final_norm_bias = load.role(Role::FinalNormBias);
  w.lm_head = spec.tie_word_embeddings ? w.embed : load.role(Role::LmHead);
  w.layers.resize(spec.num_layers);
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    LayerWeights& L = w.layers[l];
    L.attn_norm = load.role(Role::AttnNorm, l);
    L.attn_norm_bias = load.role(Role::AttnNormBias, l);
    L.ffn_norm = load.role(Role::FfnNorm, l);
    L.ffn_norm_bias = load.role(Role::FfnNormBias, l);
    L.q = load.role(Role::Q, l);
    L.q_bias = load.role(Role::QBias, l);
    L.k = load.role(Role::K, l);
    L.k_bias = load.role(Role::KBias, l);
    L.v = load.role(Role::V, l);
    L.v_bias = load.role(Role::VBias, l);
    L.o = load.role(Role::O, l);
    L.o_bias = load.role(Role::OBias, l);
    L.q_norm = load.role(Role::QNorm, l);
    L.k_norm = load.role(Role::KNorm, l);
    L.sinks = load.role(Role::Sinks, l);
    const std::string where = "layer " + std::to_string(l);
    if (!spec.is_moe[l]) {
      L.mlp = load.mlp(read_dense_mlp(spec, store, l), where + " MLP");
      continue;
    }
    L.router = load.role(Role::Router, l);
    L.router_bias = load.role(Role::RouterBias, l);
    L.score_correction_bias = load.role(Role::ScoreCorrectionBias, l);
    std::vector<torch::Tensor> w_in, b_in, w_out, b_out;
    for (int64_t e = 0; e < spec.moe.num_experts; ++e) {
      MlpWeights expert = load.mlp(read_expert(spec, store, l, e), where + " expert " + std::to_string(e));
      w_in.push_back(expert.w_in);
      w_out.push_back(expert.w_out);
      if (expert.b_in.defined()) b_in.push_back(expert.b_in);
      if (expert.b_out.defined()) b_out.push_back(expert.b_out);
    }
    L.experts.w_in = torch::stack(w_in);    // [E, R, H]
    L.experts.w_out = torch::stack(w_out);  // [E, H, F]
    if (b_in.size() == w_in.size()) L.experts.b_in = torch::stack(b_in);
    if (b_out.size() == w_out.size()) L.experts.b_out = torch::stack(b_out);
    if (spec.moe.num_shared_experts > 0) L.shared = load.mlp(read_shared_expert(spec, store, l), where + " shared expert");
    L.shared_gate = load.role(Role::SharedExpertGate, l);
    L.shared_scale = load.role(Role::SharedScale, l);
  }
  return w;
}

void for_each_parameter(ModelWeights& w, const std::function<void(const std::string&, torch::Tensor&)>& visit) {
  auto v = [&](const std::string& name, torch::Tensor& t) {
    if (t.defined()) visit(name, t);
  };
  v("embed", w.embed);
  v("position_embed", w.position_embed);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    v(p + "attn_norm", L.attn_norm);
    v(p + "attn_norm_bias", L.attn_norm_bias);
    v(p + "q", L.q);
    v(p + "q_bias", L.q_bias);
    v(p + "k", L.k);
    v(p + "k_bias", L.k_bias);
    v(p + "v", L.v);
    v(p + "v_bias", L.v_bias);
    v(p + "o", L.o);
    v(p + "o_bias", L.o_bias);
    v(p + "q_norm", L.q_norm);
    v(p + "k_norm", L.k_norm);
    v(p + "sinks", L.sinks);
    v(p + "ffn_norm", L.ffn_norm);
    v(p + "ffn_norm_bias", L.ffn_norm_bias);
    v(p + "mlp.w_in", L.mlp.w_in);
    v(p + "mlp.b_in", L.mlp.b_in);
    v(p + "mlp.w_out", L.mlp.w_out);
    v(p + "mlp.b_out", L.mlp.b_out);
    v(p + "router", L.router);
    v(p + "router_bias", L.router_bias);
    v(p + "score_correction_bias", L.score_correction_bias);
    v(p + "experts.w_in", L.experts.w_in);
    v(p + "experts.b_in", L.experts.b_in);
    v(p + "experts.w_out", L.experts.w_out);
    v(p + "experts.b_out", L.experts.b_out);
    v(p + "shared.w_in", L.shared.w_in);
    v(p + "shared.b_in", L.shared.b_in);
    v(p + "shared.w_out", L.shared.w_out);
    v(p + "shared.b_out", L.shared.b_out);
    v(p + "shared_gate", L.shared_gate);
    v(p + "shared_scale", L.shared_scale);
  }
  v("final_norm", w.final_norm);
  v("final_norm_bias", w.final_norm_bias);
  if (!w.lm_head.is_same(w.embed)) v("lm_head", w.lm_head);
}

}  // namespace moeforge::model
