// Device names as users write them ("cpu", "cuda", "cuda:1"), checked against this machine.
#pragma once

#include <torch/types.h>

#include <string>

namespace moeforge::model {

// Parses and checks a device: unknown names, CUDA without a CUDA device and an index past the
// machine's count fail with a one-line error that starts with `flag`.
torch::Device parse_device(const std::string& text, const std::string& flag = "--device");

}  // namespace moeforge::model
