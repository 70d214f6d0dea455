#include "model/model_weights.h"

#include <torch/torch.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/validate_store.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "io/dtype.h"
#include "model/mxfp4_experts.h"
#include "model/tensor_table.h"
#include "tensor/torch_bridge.h"

namespace moeforge::model {

namespace {

using Role = TensorRole;

// Every tensor arrives in the run dtype and device without a transient whole-model copy: a stored
// tensor already in the run dtype on CPU is a zero-copy view of the mapping (shared, evictable page
// cache); anything else is converted tensor by tensor. Copies stay where the runtime layout differs
// from the file's: [gate; up] rows of dense and shared MLPs, per-expert files stacked into [E, ...],
// GPT-OSS's interleaved/transposed experts, and MXFP4 (dequantised one expert at a time).
struct Loader {
  const ModelSpec& spec;
  const CheckpointStore& store;
  const LoadOptions& options;

  torch::TensorOptions run_options() const { return torch::TensorOptions().dtype(options.dtype).device(options.device); }

  // The stored tensor as torch, read-only (a view of the mapping), checked for NaN/inf in place.
  torch::Tensor source(const std::string& name) const {
    StoredTensor t = store.tensor(name);
    torch::Tensor view = view_tensor(t);
    if (options.check_finite) {
      if (!all_finite(t.bytes().data, t.info->num_elements(), t.info->dtype))
        fail(store.directory().string(), ": tensor '", name, "' contains NaN or infinite values");
      release_mapped_pages(view);  // the check read every page: loading would otherwise hold the whole file resident
    }
    return view;
  }
  torch::Tensor source(Role r, int64_t layer, int64_t expert = -1) const { return source(tensor_name(spec, r, layer, expert)); }

  // A whole stored tensor in the run dtype and device: the view itself when nothing must change.
  torch::Tensor whole(const std::string& name) const {
    torch::Tensor view = source(name);
    StoredTensor t = store.tensor(name);
    if (options.map_frozen && options.device.is_cpu() && view.scalar_type() == options.dtype && view_is_aligned(t))
      return view;
    return view.to(options.device, options.dtype, /*non_blocking=*/false, /*copy=*/true);
  }
  // The tensor of `role` at `layer` when the spec has it, else undefined.
  torch::Tensor role(Role r, int64_t layer = -1) const {
    if (!spec_has_role(spec, r, layer)) return {};
    return whole(tensor_name(spec, r, layer));
  }
  // Rows [first; second] in one private tensor (the canonical [gate; up]), converted part by part.
  torch::Tensor rows(const torch::Tensor& first, const torch::Tensor& second) const {
    std::vector<int64_t> shape = first.sizes().vec();
    shape[0] += second.size(0);
    torch::Tensor out = torch::empty(shape, run_options());
    out.narrow(0, 0, first.size(0)).copy_(first);
    out.narrow(0, first.size(0), second.size(0)).copy_(second);
    return out;
  }
  // A dense or shared MLP from its roles: w_in = [gate; up] (up alone when ungated), w_out = down.
  MlpWeights mlp(int64_t layer, Role gate, Role up, Role down, Role gate_bias, Role up_bias, Role down_bias) const {
    MlpWeights out;
    const bool gated = spec_has_role(spec, gate, layer);
    const bool has_gb = spec_has_role(spec, gate_bias, layer), has_ub = spec_has_role(spec, up_bias, layer);
    if (gated) {
      out.w_in = rows(source(gate, layer), source(up, layer));
      if (has_gb || has_ub) {
        const int64_t F = role_shape(spec, up)[0];
        auto zeros = torch::zeros({F}, torch::kFloat32);
        out.b_in = rows(has_gb ? source(gate_bias, layer) : zeros, has_ub ? source(up_bias, layer) : zeros);
      }
    } else {
      out.w_in = role(up, layer);
      if (has_ub) out.b_in = role(up_bias, layer);
    }
    out.w_out = role(down, layer);
    if (spec_has_role(spec, down_bias, layer)) out.b_out = role(down_bias, layer);
    return out;
  }

  // The routed experts of MoE layer `l`, stacked: w_in [E, R, H] (gate rows, then up), w_out [E, H, F].
  StackedExperts experts(int64_t l) const {
    const int64_t E = spec.moe.num_experts, H = spec.hidden_size, F = spec.moe.moe_intermediate_size;
    const int64_t R = spec.activation == Activation::GeluNew ? F : 2 * F;
    StackedExperts out;
    switch (spec.moe.layout) {
      case ExpertLayout::FusedConcat:  // gate_up [E, 2F, H], down [E, H, F]: the runtime layout
        out.w_in = whole(tensor_name(spec, Role::ExpertsGateUp, l));
        out.w_out = whole(tensor_name(spec, Role::ExpertsDown, l));
        break;
      case ExpertLayout::FusedInterleaved: {  // gate_up [E, H, 2F] (gate, up interleaved), down [E, F, H]
        out.w_in = torch::empty({E, R, H}, run_options());
        out.w_in.view({E, 2, F, H}).copy_(source(Role::ExpertsGateUp, l).view({E, H, F, 2}).permute({0, 3, 2, 1}));
        out.w_out = torch::empty({E, H, F}, run_options());
        out.w_out.copy_(source(Role::ExpertsDown, l).transpose(1, 2));
        break;
      }
      case ExpertLayout::PerExpert:
        out.w_in = torch::empty({E, R, H}, run_options());
        out.w_out = torch::empty({E, H, F}, run_options());
        for (int64_t e = 0; e < E; ++e) {
          if (R == 2 * F) {
            out.w_in[e].narrow(0, 0, F).copy_(source(Role::ExpertGate, l, e));
            out.w_in[e].narrow(0, F, F).copy_(source(Role::ExpertUp, l, e));
          } else {
            out.w_in[e].copy_(source(Role::ExpertUp, l, e));
          }
          out.w_out[e].copy_(source(Role::ExpertDown, l, e));
        }
        if (spec.moe.expert_bias) {  // ungated experts with biases (GPT-Neo MoE): up [F], down [H]
          out.b_in = torch::empty({E, R}, run_options());
          out.b_out = torch::empty({E, H}, run_options());
          for (int64_t e = 0; e < E; ++e) {
            out.b_in[e].copy_(source(Role::ExpertUpBias, l, e));
            out.b_out[e].copy_(source(Role::ExpertDownBias, l, e));
          }
        }
        break;
      case ExpertLayout::Mxfp4:  // packed as stored, or dequantised one expert at a time into the stack
        if (options.pack_mxfp4) {
          out.packed = packed(l);
          break;
        }
        out.w_in = torch::empty({E, R, H}, run_options());
        out.w_out = torch::empty({E, H, F}, run_options());
        for (int64_t e = 0; e < E; ++e) {
          moeforge::ExpertWeights w = read_expert(spec, store, l, e);
          const std::string what = "layer " + std::to_string(l) + " expert " + std::to_string(e);
          out.w_in[e].narrow(0, 0, F).copy_(dequantized(w.gate, {F, H}, what + " gate"));
          out.w_in[e].narrow(0, F, F).copy_(dequantized(w.up, {F, H}, what + " up"));
          out.w_out[e].copy_(dequantized(w.down, {H, F}, what + " down"));
        }
        break;
    }
    // Fused layouts keep biases as gate_up [E, 2F] interleaved and down [E, H] (expert_io's reading).
    if (spec.moe.expert_bias && spec.moe.layout != ExpertLayout::PerExpert) {
      out.b_in = torch::empty({E, 2 * F}, run_options());
      out.b_in.view({E, 2, F}).copy_(source(Role::ExpertsGateUpBias, l).view({E, F, 2}).permute({0, 2, 1}));
      out.b_out = whole(tensor_name(spec, Role::ExpertsDownBias, l));
    }
    return out;
  }
  // A stored u8 tensor as is: the mapped view on CPU, a copy on another device.
  torch::Tensor raw(const std::string& name) const {
    torch::Tensor view = source(name);
    return options.device.is_cpu() ? view : view.to(options.device);
  }
  PackedExperts packed(int64_t l) const {
    PackedExperts p;
    p.in_blocks = raw(tensor_name(spec, Role::ExpertsGateUpBlocks, l));
    p.in_scales = raw(tensor_name(spec, Role::ExpertsGateUpScales, l));
    p.out_blocks = raw(tensor_name(spec, Role::ExpertsDownBlocks, l));
    p.out_scales = raw(tensor_name(spec, Role::ExpertsDownScales, l));
    if (options.check_finite) {
      auto host = [](const torch::Tensor& t) { return t.is_cpu() ? t : t.cpu(); };
      const int64_t E = p.in_blocks.size(0);
      if (!mxfp4_all_finite(host(p.in_blocks).reshape({-1, p.in_blocks.size(2), 16}), host(p.in_scales).reshape({E * p.in_scales.size(1), -1})) ||
          !mxfp4_all_finite(host(p.out_blocks).reshape({-1, p.out_blocks.size(2), 16}), host(p.out_scales).reshape({E * p.out_scales.size(1), -1})))
        fail(store.directory().string(), ": MXFP4 experts of layer ", l, " encode NaN or infinite values");
      release_packed_pages(p);  // the check read every scale: they need not stay resident
    }
    return p;
  }
  // Decoded floats (MXFP4) as a CPU tensor borrowing `values`, checked for NaN/inf.
  torch::Tensor dequantized(std::vector<float>& values, std::vector<int64_t> shape, const std::string& what) const {
    if (options.check_finite && !all_finite(reinterpret_cast<const uint8_t*>(values.data()), values.size(), DType::F32))
      fail(store.directory().string(), ": ", what, " contains NaN or infinite values");
    return torch::from_blob(values.data(), shape, torch::kFloat32);
  }
};

// The table is the contract: every tensor it plans is loaded with its declared shape, and nothing
// else is (a mismatch is a bug in the table or a reader, never the user's).
// Packed MXFP4 experts stand in for the table's experts.w_in / experts.w_out of their layer.
void check_against_table(const ModelSpec& spec, ModelWeights& w, const std::function<bool(const std::string&)>& is_split) {
  std::vector<PlannedTensor> planned;
  for (PlannedTensor& t : planned_tensors(spec))
    if (!(is_expert_weight_stack(*t.entry) && w.layers[t.layer].experts.packed.defined())) planned.push_back(std::move(t));
  size_t i = 0;
  for_each_runtime_tensor(w, [&](const RuntimeTensor&, int64_t, const std::string& name, torch::Tensor& t) {
    if (i >= planned.size() || planned[i].name != name)
      fail("internal: loaded tensor '", name, "' is not where the runtime tensor table puts it (", spec.model_type, ")");
    if (t.sizes().vec() != planned[i].shape && !(is_split && is_split(name)))
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
  auto loaded = [&] {
    if (options.after_each_load) options.after_each_load(w);
  };
  for (const PlannedTensor& t : planned_tensors(spec))
    if (t.entry->block == TensorBlock::Single) {
      t.entry->get(w, t.layer) = load.role(t.entry->role, t.layer);
      loaded();
    }
  if (spec.tie_word_embeddings) w.lm_head = w.embed;
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    LayerWeights& L = w.layers[l];
    if (!spec.is_moe[l]) {
      L.mlp = load.mlp(l, Role::MlpGate, Role::MlpUp, Role::MlpDown, Role::MlpGateBias, Role::MlpUpBias, Role::MlpDownBias);
      loaded();
      continue;
    }
    L.experts = load.experts(l);
    loaded();
    if (spec.moe.num_shared_experts > 0) {
      L.shared = load.mlp(l, Role::SharedGate, Role::SharedUp, Role::SharedDown, Role::Count, Role::Count, Role::Count);
      loaded();
    }
  }
  check_against_table(spec, w, options.is_split);
  if (options.pack_mxfp4 && spec.moe.layout == ExpertLayout::Mxfp4) {
#ifdef __GLIBC__
    // Packed experts are decoded into fresh buffers of 4-64 MB per expert and pass. glibc's dynamic
    // mmap threshold (it rises to 32 MB) serves many of them from the heap, which then fragments:
    // measured +2.5 GB of RSS on GPT-OSS-20B shapes. A fixed 4 MB threshold maps and unmaps them.
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
  }
  return w;
}

bool make_writable(torch::Tensor& tensor) {
  if (!is_mapped_view(tensor)) return false;
  const torch::Tensor view = tensor;
  tensor = tensor.detach().clone().requires_grad_(tensor.requires_grad());
  release_mapped_pages(view);  // the copy read them; the file's pages need not stay resident beside it
  return true;
}

bool make_writable(ModelWeights& weights, torch::Tensor& tensor) {
  const bool tied_embed = &tensor == &weights.embed && weights.lm_head.defined() && weights.lm_head.is_same(weights.embed);
  if (!make_writable(tensor)) return false;
  if (tied_embed) weights.lm_head = weights.embed;
  return true;
}

void for_each_parameter(ModelWeights& w, const std::function<void(const std::string&, torch::Tensor&)>& visit) {
  for_each_runtime_tensor(w, [&](const RuntimeTensor&, int64_t, const std::string& name, torch::Tensor& t) { visit(name, t); });
}

}  // namespace moeforge::model
