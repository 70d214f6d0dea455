// The memory a model run will need, predicted before any weight is read: from the config and the
// safetensors headers only. Commands print it (--verbose) and refuse a run that cannot fit the
// budget (--max-memory, default MemAvailable) before loading anything. Torch-free header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "arch/model_spec.h"
#include "io/dtype.h"

namespace moeforge {
class CheckpointStore;
}

namespace moeforge::model {

struct MemoryPlan {
  uint64_t weights = 0;    // every runtime tensor in the run dtype (resident once read)
  uint64_t mapped = 0;     // of which zero-copy views of the file: shared, evictable page cache
  uint64_t transient = 0;  // largest per-tensor buffer while loading (conversion, MXFP4 decode)
  uint64_t runtime = 0;    // allowance for the process and libtorch themselves
  uint64_t device = 0;     // bytes on the accelerator (weights there); 0 on CPU
  uint64_t largest_layer_mapped = 0;  // the mapped bytes of the layer with the most
  uint64_t model_level_mapped = 0;    // mapped embedding, LM head and final norm
  uint64_t work = 0;                  // what the command adds on the host (train: its state and activations)
  std::string work_what;              // names it in messages ("training state ... + activations ...")
  uint64_t host_peak() const { return (device ? 0 : weights) + transient + runtime + work; }
  // Layer streaming (forward-only commands): the mapped weights are released after each use, so
  // the private tensors and one layer (or the embedding / LM head) are resident at a time.
  uint64_t streamed_peak() const {
    if (device) return host_peak();
    return weights - mapped + std::max(largest_layer_mapped, model_level_mapped) + transient + runtime + work;
  }
};

// The plan of loading `spec` from `store` for inference (stats, eval, generate, forward).
// `packed_mxfp4`: MXFP4 experts stay packed (their stored bytes, mapped on CPU) and one expert is
// decoded at a time.
// `split_ranks` > 1 (train --zero 3, train/sharded_frozen.h): the layers' matrices but the routers
// (and packed experts unless `split_packed`), and the embedding and LM head, are held as 1/N shards
// (private), plus the largest layer's whole while it runs (or the head's, during the loss).
MemoryPlan plan_model_memory(const ModelSpec& spec, const CheckpointStore& store, DType run_dtype, bool cpu,
                             bool map_frozen, bool packed_mxfp4 = false, int split_ranks = 1, bool split_packed = false);

// One line: "memory plan for DIR: weights X GB (Y GB mapped from the file), load buffers ..., peak ~P GB".
std::string describe(const MemoryPlan& plan, const std::string& what);

// One process's share of a machine's memory `budget` when `local_ranks` processes of one run share
// the machine: `shared_bytes` (the mapped weights: one page cache for all of them) once, the rest
// split evenly.
uint64_t rank_budget(uint64_t budget, int local_ranks, uint64_t shared_bytes);

// Throws "<what>: needs about P GB of memory (weights X GB + ...) but the budget is B GB (--max-memory)"
// when plan.host_peak() > budget_bytes (`streamable`: naming the streamed figure too). 0 = no limit.
// `local_ranks` > 1: budget_bytes is this rank's share (rank_budget) of `machine_budget`.
void check_memory_budget(const MemoryPlan& plan, uint64_t budget_bytes, const std::string& what, bool streamable = false,
                         int local_ranks = 1, uint64_t machine_budget = 0);

}  // namespace moeforge::model
