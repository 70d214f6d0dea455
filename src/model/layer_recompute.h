// Weights held elsewhere (ZeRO-3: frozen tensors split over the ranks, train/sharded_frozen.h):
// each layer's weights are gathered just before it runs and dropped after, and with autograd the
// layer is recomputed in the backward (activation checkpointing), so neither its gathered weights
// nor its activations stay alive between the forward and the backward. The embedding and the LM
// head may be held elsewhere too: the source looks up the embedding rows and makes the head whole.
#pragma once

#include <torch/types.h>

#include <functional>
#include <optional>

#include "model/model_weights.h"

namespace moeforge::model {

struct ForwardOutput;

// A ModelWeights whose only filled layer is `layer` (the runtime table's accessors, and run_layer,
// take a ModelWeights and read only that layer of it).
ModelWeights holding_layer(int64_t layer, const LayerWeights& weights);

// Where a forward gets each layer's complete weights from `held` (what ModelWeights holds for it).
// Every method is a collective on several ranks: every rank calls it the same number of times, in
// the same order.
class LayerWeightSource {
 public:
  virtual ~LayerWeightSource() = default;
  // A copy of `held` with every tensor this source keeps elsewhere made whole.
  virtual LayerWeights gather(int64_t layer, const LayerWeights& held) const = 0;
  // The embedding rows of `ids` (any shape, int64, in range): [ids..., H]. By default held.embed's.
  virtual torch::Tensor embed(const ModelWeights& held, const torch::Tensor& ids) const;
  // The whole LM head [V, H]. By default held.lm_head.
  virtual torch::Tensor head(const ModelWeights& held) const { return held.lm_head; }
};

// Runs `layer` (its gather inside) on h_in without keeping its graph: the output h and the routing
// it appends to `output` (logits, probabilities and combine weights of an MoE layer) get one
// autograd node whose backward gathers and runs the layer again from h_in, with the state `noise`
// (the generator the layer draws router noise from, if any) had in the forward, and back-propagates
// through that: gradients reach h_in and the layer's trainable tensors as they would without
// recomputing.
using LayerFunction = std::function<torch::Tensor(const torch::Tensor& h_in, ForwardOutput& output)>;
torch::Tensor run_recomputed(const LayerFunction& layer, const torch::Tensor& h_in, ForwardOutput& output,
                             std::optional<at::Generator> noise);

}  // namespace moeforge::model
