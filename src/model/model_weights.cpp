#include "model/model_weights.h"

#include <torch/torch.h>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/validate_store.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "model/tensor_table.h"
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

// The table is the contract: every tensor it plans is loaded with its declared shape, and nothing
// else is (a mismatch is a bug in the table or a reader, never the user's).
void check_against_table(const ModelSpec& spec, ModelWeights& w) {
  const std::vector<PlannedTensor> planned = planned_tensors(spec);
  size_t i = 0;
  for_each_runtime_tensor(w, [&](const RuntimeTensor&, int64_t, const std::string& name, torch::Tensor& t) {
    if (i >= planned.size() || planned[i].name != name)
      fail("internal: loaded tensor '", name, "' is not where the runtime tensor table puts it (", spec.model_type, ")");
    if (t.sizes().vec() != planned[i].shape)
      fail("internal: runtime tensor '", name, "' has shape ", t.sizes(), ", the table declares ", torch::IntArrayRef(planned[i].shape));
    ++i;
  });
  if (i != planned.size()) fail("internal: runtime tensor '", planned[i].name, "' was not loaded (", spec.model_type, ")");
}

}  // namespace

ModelWeights load_model_weights(const ModelSpec& spec, const CheckpointStore& store, const LoadOptions& options) {
  validate_store(spec, store);
  Loader load{spec, store, options};
  ModelWeights w;
  w.layers.resize(spec.num_layers);
  // Single-role tensors straight from the table; blocks (dense MLP, routed experts, shared expert)
  // through their expert_io readers, which know the family's on-disk layout.
  for (const PlannedTensor& t : planned_tensors(spec))
    if (t.entry->block == TensorBlock::Single) t.entry->get(w, t.layer) = load.role(t.entry->role, t.layer);
  if (spec.tie_word_embeddings) w.lm_head = w.embed;
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string where = "layer " + std::to_string(l);
    if (!spec.is_moe[l]) {
      L.mlp = load.mlp(read_dense_mlp(spec, store, l), where + " MLP");
      continue;
    }
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
  }
  check_against_table(spec, w);
  return w;
}

void for_each_parameter(ModelWeights& w, const std::function<void(const std::string&, torch::Tensor&)>& visit) {
  for_each_runtime_tensor(w, [&](const RuntimeTensor&, int64_t, const std::string& name, torch::Tensor& t) { visit(name, t); });
}

}  // namespace moeforge::model
