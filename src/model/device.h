// Device names as users write them ("cpu", "cuda", "cuda:1"), checked against this machine.
#pragma once

#include <torch/types.h>

#include <string>

namespace moeforge::model {

// Parses and checks a device: unknown names, CUDA without a CUDA device and an index past the
// machine's count fail with a one-line error that starts with `flag`.
torch::Device parse_device(const std::string& text, const std::string& flag = "--device");

// The device of local rank `local_rank` of `local_size` processes on this machine, the way
// torchrun's users expect: "cuda" without an index is cuda:LOCAL_RANK (one GPU per rank); a named
// GPU is kept only by a lone local process (NCCL cannot put two ranks on one GPU); cpu stays cpu.
torch::Device rank_device(const torch::Device& requested, int local_rank, int local_size, const std::string& flag = "--device");

}  // namespace moeforge::model
