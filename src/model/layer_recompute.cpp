#include "model/layer_recompute.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/torch.h>

#include <type_traits>

#include "common/error.h"
#include "model/transformer.h"

namespace moeforge::model {

namespace {

// The differentiable outputs of one layer, in a fixed order: h, then per routing entry its logits,
// probabilities and combine weights (undefined ones left out and marked).
std::vector<torch::Tensor*> differentiable(torch::Tensor& h, ForwardOutput& out, size_t first_routing) {
  std::vector<torch::Tensor*> list{&h};
  for (size_t i = first_routing; i < out.routing.size(); ++i) {
    auto& r = out.routing[i];
    list.push_back(&r.logits);
    list.push_back(&r.routing.probs);
    list.push_back(&r.routing.weights);
  }
  return list;
}

bool is_float(const torch::Tensor& t) { return t.defined() && t.is_floating_point(); }

class RecomputeLayer : public torch::autograd::Node {
 public:
  // `before`: the noise generator's state before the forward ran the layer, so the recompute draws
  // what the forward drew (router noise).
  RecomputeLayer(LayerFunction layer, torch::Tensor h_in, std::vector<bool> present, std::optional<at::Generator> noise,
                 torch::Tensor before)
      : layer_(std::move(layer)), h_in_(std::move(h_in)), present_(std::move(present)), noise_(std::move(noise)),
        before_(std::move(before)) {}
  std::string name() const override { return "moeforge::RecomputeLayer"; }

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    if (!h_in_.defined()) fail("internal: a recomputed layer's backward ran twice (its input is kept for one backward)");
    torch::Tensor state_now;
    if (noise_) state_now = noise_->get_state(), noise_->set_state(before_);
    torch::Tensor x, h;
    ForwardOutput out;
    {
      torch::AutoGradMode grad_mode(true);
      x = h_in_.detach().requires_grad_(true);
      h = layer_(x, out);
    }
    if (noise_) noise_->set_state(state_now);
    std::vector<torch::Tensor> roots, root_grads;
    size_t g = 0;
    const auto outputs = differentiable(h, out, 0);
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!present_[i]) continue;  // not an output of the forward's node (undefined or integer)
      const torch::Tensor& grad = grads[g++];
      if (grad.defined() && outputs[i]->requires_grad()) roots.push_back(*outputs[i]), root_grads.push_back(grad);
    }
    if (!roots.empty()) torch::autograd::backward(roots, root_grads);
    h_in_ = torch::Tensor();  // one backward per forward (no retain_graph through a recomputed layer)
    return {x.grad()};
  }

 private:
  LayerFunction layer_;
  torch::Tensor h_in_;
  std::vector<bool> present_;  // per differentiable() slot: whether the forward gave it an edge here
  std::optional<at::Generator> noise_;
  torch::Tensor before_;
};

// Autograd nodes are held by intrusive_ptr from libtorch 2.10 on, by shared_ptr before.
using NodePtr = decltype(torch::autograd::Edge().function);

template <class Ptr, class... Args>
Ptr make_node_as(Args&&... args) {
  if constexpr (std::is_same_v<Ptr, std::shared_ptr<torch::autograd::Node>>)
    return std::make_shared<RecomputeLayer>(std::forward<Args>(args)...);
  else
    return c10::make_intrusive<RecomputeLayer>(std::forward<Args>(args)...);
}

template <class... Args>
NodePtr make_node(Args&&... args) {
  return make_node_as<NodePtr>(std::forward<Args>(args)...);
}

}  // namespace

torch::Tensor LayerWeightSource::embed(const ModelWeights& held, const torch::Tensor& ids) const {
  return torch::embedding(held.embed, ids);
}

ModelWeights holding_layer(int64_t layer, const LayerWeights& weights) {
  ModelWeights w;
  w.layers.resize(static_cast<size_t>(layer) + 1);
  w.layers[layer] = weights;
  return w;
}

torch::Tensor run_recomputed(const LayerFunction& layer, const torch::Tensor& h_in, ForwardOutput& output,
                             std::optional<at::Generator> noise) {
  const size_t first = output.routing.size();
  torch::Tensor before;
  if (noise) before = noise->get_state();
  torch::Tensor h;
  {
    torch::NoGradGuard no_grad;
    h = layer(h_in, output);
  }
  std::vector<torch::Tensor*> outputs = differentiable(h, output, first);
  std::vector<bool> present;
  std::vector<torch::Tensor> with_history;
  for (torch::Tensor* t : outputs) {
    present.push_back(is_float(*t));
    if (!is_float(*t)) continue;
    *t = t->detach();  // no view of a no-grad result gets the history
    with_history.push_back(*t);
  }
  auto node = make_node(layer, h_in.detach(), std::move(present), std::move(noise), std::move(before));
  node->set_next_edges(torch::autograd::collect_next_edges(h_in));
  torch::autograd::set_history(with_history, node);
  // set_history gave the listed tensors (copies of the handles) their edges; the handles in `output` share them.
  size_t k = 0;
  for (torch::Tensor* t : outputs)
    if (is_float(*t)) *t = with_history[k++];
  return h;
}

}  // namespace moeforge::model
