// `info`'s memory plan per mode (dtype, packed or dequantized MXFP4, streamed). The plan belongs to
// the libtorch runtime (model/memory_plan.h), so the torch build registers the provider
// (cli/torch/info_memory.cpp); a torch-free build, which runs no model, shows weights only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moeforge {
class CheckpointStore;
}

namespace moeforge::cli {

struct ModeMemory {
  std::string mode;        // "fp32", "bf16", "bf16 --dequantize"
  std::string commands;    // which commands run so
  uint64_t weights = 0;    // runtime weights (packed MXFP4 as stored)
  uint64_t mapped = 0;     // of which zero-copy views of the file
  uint64_t peak = 0;       // predicted host peak (weights, load buffers, runtime), activations aside
  uint64_t streamed = 0;   // stats / eval / teacher-cache streaming one layer at a time
};

using InfoMemoryProvider = std::vector<ModeMemory> (*)(const CheckpointStore& store);
InfoMemoryProvider& info_memory_provider();  // null until the torch build registers one

}  // namespace moeforge::cli
