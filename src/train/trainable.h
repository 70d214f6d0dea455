// The trainable tensors of one phase, built from a Selection: whole tensors train in place, selected
// experts of stacked tensors train as a separate [n, ...] slice (so unselected experts have neither
// gradient nor optimiser state), LoRA adds A/B factors. effective_weights() assembles the
// differentiable ModelWeights the forward pass uses.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "model/model_weights.h"
#include "train/recipe.h"
#include "train/selectors.h"

namespace moeforge::model {
class LayerWeightSource;  // model/layer_recompute.h
}

namespace moeforge::train {

// One optimisable leaf tensor ("layers.1.q", "layers.1.experts.w_in[0,3]", "layers.1.q.lora_A").
struct Leaf {
  std::string name;
  torch::Tensor tensor;      // requires_grad leaf
  double lr_scale = 1.0;
  double weight_decay = 0.0;
};

struct TrainableTensor {
  std::string name;                 // canonical
  torch::Tensor* base = nullptr;    // the model's tensor (full shape)
  std::vector<bool> mask;           // the selection: one entry per expert of a stacked tensor, else one
  std::vector<int64_t> experts;     // selected experts of a stacked tensor; empty = whole tensor
  torch::Tensor index;              // [n] int64: the rows of `base` holding `experts` (their ids, or their
                                    // rows among a packed stack's unpacked experts, model/moe_experts.h)
  torch::Tensor value;              // full method: the base itself or its fp32 master (whole), or an fp32 [n, ...] slice
  torch::Tensor master;             // mixed precision: the fp32 master of `base` (full shape); else undefined
  bool lora = false;
  torch::Tensor lora_a, lora_b;     // [r, in] / [out, r], or [n, r, in] / [n, out, r] for experts
  double lora_scale = 0.0;          // alpha / r

  // Differentiable full-shape weight: base with the slice / LoRA delta applied.
  torch::Tensor effective() const;
  // The LoRA delta, full-shape ([out, in] or [E, out, in] with zeros for unselected experts).
  torch::Tensor lora_delta() const;
};

struct TrainableOptions {
  Method method = Method::Full;
  LoraOptions lora;
  OptimizerOptions optimizer;       // weight decay and groups
  std::map<std::string, Selection> group_selections;  // ParamGroup::select resolved, same order as optimizer.groups
  // Mixed precision: when the model holds a selected tensor in a lower precision (bf16), training
  // updates an fp32 master kept here (canonical name -> full-shape fp32 tensor on the model's
  // device), created from the model's tensor on first use. The caller keeps the map across phases
  // so a tensor trained in several phases never loses its low bits. Unused for fp32 models.
  std::map<std::string, torch::Tensor>* masters = nullptr;
};

class TrainableSet {
 public:
  // Marks the selected tensors trainable. LoRA factors are initialised from torch's CPU generator
  // (A: Kaiming-uniform as PEFT, B: zeros).
  TrainableSet(model::ModelWeights& weights, const ModelSpec& spec, const Selection& selection, const TrainableOptions& options);
  ~TrainableSet();

  // Shallow copy of the model's weights with every trainable tensor replaced by its effective().
  model::ModelWeights effective_weights() const;
  // Every optimisable leaf, in a stable order.
  const std::vector<Leaf>& leaves() const { return leaves_; }
  std::vector<Leaf>& leaves() { return leaves_; }
  const std::vector<TrainableTensor>& tensors() const { return tensors_; }
  // After an optimiser step: copy expert slices back into the model's stacked tensors (and masters
  // into the model's low-precision tensors).
  void write_back();
  // End of phase: fold LoRA deltas into the model's tensors (and masters), drop requires_grad.
  void finish();
  void zero_grad();
  // Canonical name -> expert mask of what this set changes in the model (for the run's record).
  Selection changed() const;

 private:
  model::ModelWeights* weights_;
  bool tied_ = false;
  std::vector<TrainableTensor> tensors_;
  std::vector<Leaf> leaves_;
  bool finished_ = false;
};

// Packed MXFP4 expert stacks: unpacks (model/mxfp4_experts.h) every expert any of `selections`
// trains, so TrainableSet finds them dense; the other experts stay packed. `held_elsewhere`: where
// split stacks are made whole for it (ZeRO-3; a collective, every rank with the same selections).
void unpack_selected_experts(model::ModelWeights& weights, const std::vector<Selection>& selections,
                             const model::LayerWeightSource* held_elsewhere = nullptr);

// Canonical parameter list of a model (names, shapes, expert counts) for selectors, from its spec
// alone: a training plan is made before any weight is read.
std::vector<ParamInfo> describe_parameters(const ModelSpec& spec);

// Whether a canonical tensor is a LoRA target under `lora` (linear weights and stacked expert
// projections; the router only when lora.router).
bool is_lora_target(const std::string& name, int64_t dims, const LoraOptions& lora);

}  // namespace moeforge::train
