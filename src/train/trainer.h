// `moeforge train`: runs a recipe's phases on a model and data, with a gradient probe, NaN guards,
// atomic checkpoints for exact resume, metrics, and the outputs of export.h.
//
// Run directory: run.json (model, data, tokenizer), recipe.json (as given), metrics.jsonl,
// tensorboard/, checkpoints/, trainable.safetensors, adapter_config.json + adapter_model.safetensors
// (LoRA), selection_bias.json (aux-loss-free biases), summary.json.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "train/recipe.h"
#include "train/selectors.h"
#include "train/training_memory.h"

namespace moeforge::dist {
class World;
}

namespace moeforge::train {

struct TrainOptions {
  std::filesystem::path model_dir;
  std::string data_spec;
  std::filesystem::path tokenizer_dir;   // default: the model directory
  std::filesystem::path teacher_dir;     // `--teacher`: the distillation teacher of every distilling phase (overrides the recipe's)
  std::filesystem::path teacher_cache;   // `--teacher-cache`: a `moeforge teacher-cache` directory instead of an online teacher
  double max_bad_fraction = -1;          // `--max-bad-fraction`: overrides the recipe's (< 0: the recipe's)
  std::string teacher_device;            // `--teacher-device`: where the online teacher runs ("" = the student's device)
  std::filesystem::path analysis_plan;   // plan.json of `moeforge analyze` for experts=plan:esft (optional)
  nlohmann::json recipe;                 // raw recipe JSON (validated by the trainer)
  std::string recipe_label = "recipe";   // file name in messages
  std::filesystem::path out_dir;
  std::string device;                    // "cpu", "cuda", "cuda:N"; empty = run.json's on resume, else "cpu"
  bool rewrite_run_files = false;        // set by --resume with overrides: run.json/recipe.json get the new values
  bool resume = false;                   // continue out_dir from its latest checkpoint (model/data/recipe from run.json)
  bool progress = true;                  // progress on stderr (bar when a TTY)
  bool tensorboard = true;
  std::filesystem::path data_cache_dir;  // token cache (default: data::DataOptions's)
  int64_t stop_after_steps = 0;          // tests: return after this many global steps, as if interrupted
  int64_t dump_steps = 0;                // debugging: RUN/dump/step_<i>.safetensors for the first N steps (train/step_dump.h)
  dist::World* world = nullptr;          // data parallel over these ranks (train/data_parallel.h); null = one process
  int zero_stage = 0;                    // 1: optimiser state sharded over the ranks (ZeRO-1); 2: and gradients; 3: and frozen weights
  double bucket_mb = 25;                 // data parallel: gradient all-reduce buckets overlapping the backward; 0 = one after it
  bool expert_parallel = false;          // with several ranks: each computes one block of every MoE layer's experts
  // MXFP4 experts: false keeps them packed and holds only the experts a phase trains dense (exported
  // re-quantised to MXFP4); true (--dequantize) loads every expert dense and exports them unquantised.
  bool dequantize = false;
  int64_t max_memory_bytes = -1;         // `--max-memory`: the budget of the run's predicted peak (-1 = MemAvailable, 0 = none)
  bool verbose = false;                  // `--verbose`: print the memory plan (weights + training state) before loading
};

struct TrainResult {
  int64_t steps = 0;                     // global steps done (over all phases)
  bool finished = false;                 // every phase ran to the end and outputs were written
  std::vector<double> losses;            // per step run by this call (NaN for skipped steps)
  std::vector<std::string> trainable;    // HF names in trainable.safetensors
  std::filesystem::path out_dir;
};

class Trainer {
 public:
  explicit Trainer(TrainOptions options);
  ~Trainer();
  TrainResult run();
  // The model after run() (trained weights, in memory, in the run's precision).
  model::Transformer& model() { return *model_; }
  // With precision bf16: the fp32 masters of every trained tensor (canonical names); else empty.
  const std::map<std::string, torch::Tensor>& masters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<model::Transformer> model_;
  TrainOptions options_;
};

// `--list-params`: what each phase's selectors pick (names, shapes, experts, parameter counts, LoRA).
// Ends with the run's predicted memory (training state and activations; `dequantize` as --dequantize).
// Reads the config and safetensors headers only.
// `data_parallel.ranks` > 1: the plan of one rank of such a run (gradient buckets, ZeRO-1/2 moments,
// ZeRO-3 frozen weights split over the ranks).
std::string list_params(const std::filesystem::path& model_dir, const nlohmann::json& recipe, const std::string& recipe_label,
                        const std::filesystem::path& analysis_plan = {}, bool dequantize = false, const DataParallelShape& data_parallel = {});

}  // namespace moeforge::train
