// Debugging dump of the first optimiser steps (`moeforge train --dump-steps N`, docs/TRAINING.md):
// what a reference implementation needs to replay a step exactly, used by the model-level training
// parity test (tests/parity/test_train_model_parity.py: transformers + torch.optim.AdamW).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "arch/model_spec.h"
#include "data/batch_iterator.h"
#include "model/model_weights.h"
#include "train/trainable.h"

namespace moeforge::train {

// The step's loss as optimised: total = ce + lb_coef * lb + z_coef * z (ce token-weighted over the
// whole step, lb and z means over its micro-batches); lr = the scheduled rate of the step.
struct StepLosses {
  double ce = 0, lb = 0, z = 0, total = 0, lr = 0;
};

// Writes DIR/step_<step>.safetensors (step = 0-based global optimiser step), after the step's
// backward and before clipping and the update:
//   input_ids [M*B, T] int64, loss_mask [M*B, T] uint8: the step's M micro-batches, stacked in order;
//   loss.ce, loss.lb, loss.z, loss.total, lr: float64 scalars;
//   the gradient d(loss.total)/d(tensor) of every trained tensor, float32, in the family's Hugging Face
//   names and layout (encode_trainable); in a fused expert tensor, experts not trained are zero;
//   LoRA factors as "leaf.<canonical>.lora_A" / ".lora_B".
// Metadata: step, micro_batches, batch_size.
void write_step_dump(const std::filesystem::path& dir, int64_t step, const ModelSpec& spec, const model::ModelWeights& weights,
                     const TrainableSet& set, const std::vector<data::Batch>& micro, const StepLosses& losses);

}  // namespace moeforge::train
