// The global generators: the CPU one (LoRA init) and, on an accelerator, the device's. Saved in
// checkpoints as "rng.<device type>" for exact resume. (Router noise has its own generator per
// micro-batch, seeded from the step: trainer.cpp's micro_batch_options.)
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace moeforge::train {

std::map<std::string, torch::Tensor> rng_state(const torch::Device& device);
// Restores the generators whose keys are present (a CPU checkpoint resumed on CUDA keeps the CUDA one).
void set_rng_state(const torch::Device& device, const std::map<std::string, torch::Tensor>& tensors);

}  // namespace moeforge::train
