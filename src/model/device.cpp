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

}  // namespace moeforge::model
