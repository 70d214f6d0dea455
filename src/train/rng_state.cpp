// Generator state for checkpoints (see rng_state.h).
#include "train/rng_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <mutex>

namespace moeforge::train {

std::map<std::string, torch::Tensor> rng_state(const torch::Device& device) {
  std::map<std::string, torch::Tensor> out{{"rng.cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (!device.is_cpu()) out["rng." + c10::DeviceTypeName(device.type(), true)] = at::globalContext().defaultGenerator(device).get_state();
  return out;
}

void set_rng_state(const torch::Device& device, const std::map<std::string, torch::Tensor>& tensors) {
  auto restore = [&](at::Generator gen, const std::string& key) {
    auto it = tensors.find(key);
    if (it == tensors.end()) return;
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(it->second.to(torch::kCPU));
  };
  restore(at::detail::getDefaultCPUGenerator(), "rng.cpu");
  if (!device.is_cpu()) restore(at::globalContext().defaultGenerator(device), "rng." + c10::DeviceTypeName(device.type(), true));
}

}  // namespace moeforge::train
