#include "model/device.h"

#include <torch/cuda.h>

#include <optional>

#include "common/error.h"

namespace moeforge::model {

torch::Device parse_device(const std::string& text, const std::string& flag) {
  std::optional<torch::Device> device;
  try {
    device = torch::Device(text);
  } catch (const std::exception&) {
  }
  if (!device || !(device->is_cpu() || device->is_cuda()) || (device->is_cpu() && device->has_index()))
    fail(flag, " '", text, "' is not cpu or cuda[:N]");
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) fail(flag, " ", text, ": no CUDA device is available (this build or machine has none)");
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (device->has_index() && device->index() >= count)
      fail(flag, " ", text, ": this machine has ", count, " CUDA device(s)");
  }
  return *device;
}

torch::Device rank_device(const torch::Device& requested, int local_rank, int local_size, const std::string& flag) {
  if (!requested.is_cuda() || local_size <= 1) return requested;
  if (requested.has_index())
    fail(flag, " ", requested.str(), " names one GPU for ", local_size, " local processes; give cuda without an index (local rank i runs on cuda:i)");
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (local_rank >= count)
    fail(flag, " cuda: local rank ", local_rank, " of ", local_size, " needs CUDA device ", local_rank, "; this machine has ",
         count, " (one GPU per rank)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

}  // namespace moeforge::model
