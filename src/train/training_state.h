// What a run carries from step to step besides the model's own tensors: its position (RunState),
// the fp32 masters of trained tensors (precision bf16) and the aux-loss-free selection biases; and
// how that state goes into a checkpoint and comes back out of one (files: run_checkpoint.h).
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

#include "model/model_weights.h"
#include "train/optimizer.h"
#include "train/run_checkpoint.h"
#include "train/trainable.h"

namespace moeforge::train {

struct TrainingState {
  RunState run;
  std::map<std::string, torch::Tensor> masters;  // canonical name -> fp32 master (bf16 runs)
  std::map<int64_t, torch::Tensor> aux_bias;     // MoE layer -> [E] aux-loss-free bias, on the device
  std::map<std::string, torch::Tensor> sfa_anchor;  // phase leaf -> its value at the last SFA merge (phases with sfa)

  // The model tensor `name` at full precision: its fp32 master where one is held.
  const torch::Tensor& full_precision(const std::string& name, const torch::Tensor& model_tensor) const;

  // Writes checkpoints/step-N: every changed tensor (masters where held), the RNG and aux biases;
  // mid-phase also the phase's live leaves (LoRA factors, expert slices) and optimiser state.
  // With `shard_ranks` > 1 the optimiser holds this rank's share only and ranks 1.. have written
  // theirs (run_checkpoint.h save_checkpoint_shard).
  void save(const std::filesystem::path& run_dir, int64_t keep, model::ModelWeights& weights, const torch::Device& device,
            const TrainableSet* phase_set, const Optimizer* phase_optimizer, int shard_ranks = 1) const;

  // Continues from checkpoint `cp`: position, changed model tensors (and their masters), aux biases, RNG.
  void restore(const RunState& cp, model::ModelWeights& weights, const torch::Device& device, const std::string& where);

  // Mid-phase resume: the phase's leaves and optimiser state from `cp`, then its RNG state.
  static void restore_phase(const RunState& cp, TrainableSet& set, Optimizer& optimizer, const torch::Device& device,
                            const std::string& where);
};

}  // namespace moeforge::train
