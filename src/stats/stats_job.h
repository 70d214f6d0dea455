// `moeforge stats`: runs a MoE model forward only over a data sample and writes STATS_DIR:
//   stats.json                 router statistics (router_stats.h; schema in docs/PLAN_SCHEMA.md)
//   router_moments.safetensors per layer sum p [E] and sum p p^T [E, E] (f64): PCA without a dump
//   router_probs.npz / .safetensors  with dump_probs (prob_dump.h)
// The directory is written under a temporary sibling name and renamed into place when complete.
//
// Sample: blocks of the whole data (no validation split) in a seeded shuffled order (mixture
// weights respected, Dataset::epoch_order), or chosen by calibration (calibration.h) from a pool of
// that order; counting stops after exactly `tokens` non-padding tokens (or at the end of the data).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "model/model_weights.h"
#include "stats/router_stats.h"

namespace moeforge::dist {
class World;
}

namespace moeforge::stats {

struct StatsOptions {
  std::filesystem::path model, out;
  std::filesystem::path tokenizer;   // default: the model directory
  std::string data;                  // --data spec
  int64_t tokens = 100000;           // tokens to count
  int64_t block_size = 512;
  int64_t batch_size = 8;
  uint64_t seed = 0;                 // block order
  double max_bad_fraction = 0.01;    // bad data records tolerated (data::DataOptions)
  bool allow_long_seq = false;       // block_size beyond max_position_embeddings (RoPE only)
  int64_t entropy_bins = 20;
  bool dump_probs = false;
  bool loss_delta = false;
  int64_t loss_delta_tokens = 2048;  // sample for ablations (taken from the front of the sample)
  bool calibrate = false;
  int64_t calibrate_pool = 0;        // candidate blocks; 0 = max(8 x needed, 256), capped by the data
  bool progress = true;              // stderr
  bool overwrite = false;            // replace an existing STATS_DIR
  bool forward_only = false;         // benchmark baseline: same loop, nothing collected or written but timing
  // A streamed model (over the memory budget, model/memory_plan.h) runs batches layer-major in groups
  // holding about this many bytes of hidden states and routing records: each layer is read once per
  // group instead of once per batch. 0 = one batch at a time.
  int64_t layer_major_bytes = 512ll << 20;
  model::LoadOptions load;
  // Several ranks: batch i is forwarded by rank i mod N, the sums are added; rank 0 writes STATS_DIR.
  dist::World* world = nullptr;
};

// Runs and writes STATS_DIR; returns what was written (also in stats.json).
RouterStats run_stats(const StatsOptions& options);

}  // namespace moeforge::stats
