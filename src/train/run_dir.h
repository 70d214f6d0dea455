// The run directory's own files: run.json (model, data, tokenizer, device, plan: what --resume reuses),
// recipe.json (as given), and after the last phase selection_bias.json and summary.json.
#pragma once

#include <torch/types.h>

#include <map>
#include <vector>

#include "train/selectors.h"
#include "train/trainer.h"

namespace moeforge::train {

// Completes `options` before anything large is loaded: on --resume, what run.json and recipe.json
// recorded fills what the command left out; a fresh run refuses a directory that already holds one.
// Defaults: tokenizer = model directory, device = cpu; the data spec becomes absolute.
TrainOptions resolve_run_options(TrainOptions options);

// Creates the run directory and writes run.json and recipe.json (atomically).
void write_run_files(const TrainOptions& options);

// After the last phase: selection_bias.json (when aux-loss-free biases exist) and summary.json.
void write_run_summary(const std::filesystem::path& run_dir, int64_t steps, const std::vector<std::string>& trainable,
                       const Selection& changed, const std::map<int64_t, torch::Tensor>& aux_bias);

}  // namespace moeforge::train
