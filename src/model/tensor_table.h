// The runtime tensor table (gemma.cpp's ForEachTensor): every canonical tensor the runtime holds,
// declared once with its name, where it lives in ModelWeights, how it is made from the family's
// on-disk roles, its shape and its selector group. Loading, for_each_parameter, the export
// mapping, trainable-tensor descriptions and the training selectors all iterate this one table;
// canonical names ("layers.3.q") are built and parsed only here. Torch-free header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "arch/tensor_role.h"

namespace at {
class Tensor;
}

namespace moeforge::model {

struct ModelWeights;

// Which selector term picks a tensor (see train/selectors.h). SelectionBias tensors (DeepSeek's
// e_score_correction_bias) are no parameters of the loss: "all" and "layers=" leave them out.
enum class TensorGroup : uint8_t { Embedding, Norm, Attention, Mlp, Router, SelectionBias, Experts, SharedExpert, LmHead };
const char* to_string(TensorGroup group);

// How a canonical tensor is made from the family's on-disk roles.
//   Role:       one role, same shape (q_proj, norms, router, ...)
//   GateUpRows: rows [gate; up] of two roles, or the up role alone when the family has no gate
//                (GPT-Neo c_fc); read by arch/expert_io with its block (dense MLP, shared expert)
//   Experts:    every routed expert of a layer stacked along dim 0, read and written by arch/expert_io
//                in the family's layout (per-expert, fused, interleaved, MXFP4)
enum class TensorSource : uint8_t { Role, GateUpRows, Experts };

enum class TensorScope : uint8_t { Model, Layer };

// Which reader loads it: Single entries one role at a time; a block's entries together, by the
// arch/expert_io reader of that block (its on-disk layout interleaves them: GPT-OSS, MXFP4).
enum class TensorBlock : uint8_t { Single, DenseMlp, SharedExpert, RoutedExperts };

struct RuntimeTensor {
  const char* name;       // local canonical name: "embed", "q", "mlp.w_in", "experts.w_in"
  TensorScope scope;
  TensorGroup group;
  TensorSource source;
  TensorBlock block;
  TensorRole role;        // Role: the role; GateUpRows: the up role; Experts: the fused role it stands for
  TensorRole gate_role;   // GateUpRows: the gate role; TensorRole::Count elsewhere
  bool linear;            // an [out, in] matrix (or [E, out, in] stack) that LoRA may target
  at::Tensor& (*get)(ModelWeights& weights, int64_t layer);
};

// The table, in the stable visiting order: model-level head tensors, then every layer's
// tensors, then model-level tail tensors.
const std::vector<RuntimeTensor>& runtime_tensors();

// The entry of a local name ("q", "experts.w_in"); null when there is none.
const RuntimeTensor* find_runtime_tensor(const std::string& local_name);

// "layers.3.q" <-> {3, "q"}; "embed" <-> {-1, "embed"}.
struct CanonicalName {
  int64_t layer = -1;  // -1 for model-level tensors
  std::string local;
};
CanonicalName parse_canonical_name(const std::string& name);  // throws on "layers.x.q" / "layers.3"
std::string canonical_name(int64_t layer, const std::string& local);

// experts.w_in / experts.w_out: the routed experts' weight stacks, which packed MXFP4 experts
// (StackedExperts::packed) hold instead.
bool is_expert_weight_stack(const RuntimeTensor& tensor);
// Whether the spec has this tensor at `layer` (-1 for model-level ones). The tied LM head is absent
// (it is the embedding).
bool spec_has_tensor(const ModelSpec& spec, const RuntimeTensor& tensor, int64_t layer);
// The runtime shape (experts.w_in [E, R, H] with R = 2F gated or F, mlp.w_in [R, H], q [nh*hd, H], ...).
std::vector<int64_t> runtime_shape(const ModelSpec& spec, const RuntimeTensor& tensor, int64_t layer);

// The whole sweep for a spec, without weights: what loading must produce (name, entry, layer, shape).
struct PlannedTensor {
  std::string name;
  const RuntimeTensor* entry = nullptr;
  int64_t layer = -1;
  std::vector<int64_t> shape;
};
std::vector<PlannedTensor> planned_tensors(const ModelSpec& spec);

// Visits every defined tensor of `weights` in table order with its entry, layer and canonical name.
// The tied LM head is not visited (it is the embedding).
void for_each_runtime_tensor(
    ModelWeights& weights,
    const std::function<void(const RuntimeTensor& entry, int64_t layer, const std::string& name, at::Tensor& tensor)>& visit);

}  // namespace moeforge::model
