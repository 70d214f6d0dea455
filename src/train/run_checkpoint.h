// Run checkpoints: everything needed to continue a run bit-for-bit on CPU — changed model tensors,
// LoRA factors, optimiser state, schedule/phase position, data position, RNG state, aux-loss-free
// biases. Each is a directory checkpoints/step-NNNNNNNN (state.json + tensors.safetensors) written
// under a temporary name and renamed into place; checkpoints/latest names the newest (replaced
// atomically), so a crash at any moment leaves the last good checkpoint intact.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "data/batch_iterator.h"
#include "train/selectors.h"

namespace moeforge::train {

struct RunState {
  int64_t phase = 0;          // phase to run next / running
  int64_t step_in_phase = 0;  // optimiser steps done in that phase
  int64_t global_step = 0;    // optimiser steps done in the whole run
  data::Position data_position;  // of the phase's train iterator
  int64_t bad_streak = 0;     // consecutive non-finite steps
  int64_t optimizer_steps = 0;
  Selection changed;          // model tensors (and experts) changed so far
  // "model.<canonical>" full tensors of `changed`; "lora.<leaf>", "slice.<leaf>"; "opt.<slot>";
  // "rng.cpu" (uint8 generator state); "aux_free.<layer>" [E].
  std::map<std::string, torch::Tensor> tensors;
  nlohmann::json extra = nlohmann::json::object();  // recipe hash etc.
};

// Writes checkpoints/step-<global_step>, points `latest` at it, keeps the newest `keep`. With
// `shard_ranks` > 1 (a sharded optimiser's run, rank 0 calling): ranks 1.. have written their share
// of the state with save_checkpoint_shard; those files move into the step's directory as
// optimizer.rank-R-of-N.safetensors before it is renamed into place, and state.json lists them.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const RunState& state, int64_t keep,
                                      int shard_ranks = 1);
// Rank `rank` (> 0) of `ranks`: its tensors for step `global_step`, as a complete directory
// checkpoints/.step-<global_step>.rank-<rank> (written under a temporary name, renamed when done).
void save_checkpoint_shard(const std::filesystem::path& run_dir, int64_t global_step, int rank, int ranks,
                           const std::map<std::string, torch::Tensor>& tensors);
// The newest complete checkpoint (with every shard state.json lists), or nullopt when the run has none.
std::optional<RunState> load_latest_checkpoint(const std::filesystem::path& run_dir);

// Selection <-> JSON ({"name": [true, false, ...]}).
nlohmann::json selection_to_json(const Selection& selection);
Selection selection_from_json(const nlohmann::json& json);

}  // namespace moeforge::train
