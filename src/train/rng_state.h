// The generators a run draws from: the CPU one (LoRA init, shuffling) and, on an accelerator, the
// device's (router noise). Saved in checkpoints as "rng.<device type>" for exact resume.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace moeforge::train {

std::map<std::string, torch::Tensor> rng_state(const torch::Device& device);
// Restores the generators whose keys are present (a CPU checkpoint resumed on CUDA keeps the CUDA one).
void set_rng_state(const torch::Device& device, const std::map<std::string, torch::Tensor>& tensors);

}  // namespace moeforge::train
