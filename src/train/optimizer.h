// Optimisers over the phase's leaves, written out so their state is plain named tensors for
// checkpoints: AdamW (decoupled weight decay) and Adafactor (factored second moments for tensors
// with >= 2 dims, update RMS clipping, optional momentum).
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "train/recipe.h"
#include "train/trainable.h"

namespace moeforge::train {

class Optimizer {
 public:
  explicit Optimizer(const OptimizerOptions& options) : options_(options) {}
  // One update of every leaf that has a gradient; `lr` is the scheduled rate (times leaf.lr_scale).
  void step(std::vector<Leaf>& leaves, double lr);
  int64_t steps() const { return step_; }
  // State as named tensors ("<leaf>.exp_avg", ...) plus the step count, and back.
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t steps, const std::string& where);

 private:
  void adamw(const Leaf& leaf, const torch::Tensor& grad, double lr);
  void adafactor(const Leaf& leaf, const torch::Tensor& grad, double lr);
  OptimizerOptions options_;
  int64_t step_ = 0;
  std::map<std::string, torch::Tensor> state_;
};

// Global L2 norm of the leaves' gradients (float64 accumulate); scales them by clip/norm when the
// norm exceeds `clip` (> 0). Returns the norm before clipping (inf/NaN when any gradient is).
double clip_gradients(std::vector<Leaf>& leaves, double clip);
// Its two halves, for gradients spread over ranks (ZeRO-2): the sum of the leaves' squared
// per-leaf L2 norms, and the scaling of the leaves' gradients for a given global norm.
double squared_gradient_norm(const std::vector<Leaf>& leaves);
void scale_gradients_to_clip(std::vector<Leaf>& leaves, double norm, double clip);

}  // namespace moeforge::train
