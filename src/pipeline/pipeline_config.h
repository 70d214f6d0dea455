// `moeforge pipeline CONFIG`: the declarative job file. Parsed and validated before any stage runs;
// unknown fields are errors and every error names the field ("job.json: surgery.upcycle.experts:
// must be >= 2"). Relative paths resolve against the config file's directory. Defaults live here
// and in docs/PIPELINE.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "surgery/grow.h"
#include "surgery/shared_expert.h"
#include "surgery/upcycle.h"

namespace moeforge::pipeline {

struct StatsStage {            // router statistics of the MoE base (before surgery) and of the result
  int64_t tokens = 100000;
  int64_t block_size = 512;
  int64_t batch_size = 8;
};

struct AnalyzeStage {          // turns stats_before into plan.json (clone choices feed grow)
  double clone_min_usage = 0.02;
  double clone_min_entropy = 0.5;
  int64_t num_new = 0;         // clones per layer; 0 = the expert-extension rule
  int64_t max_new = 8;
};

// The surgery stages hold the surgery jobs' own options (their defaults are the job's); the
// pipeline fills in source, out, seed and verify when it runs them. The job file sets:
//   upcycle: to, experts, top_k, method, noise_std, granularity, router (zero | random; hidden
//            needs prompts: use `moeforge upcycle`), layers
//   grow: clone ("plan": plan.json from analyze, or "L:E,.." / "*:E"), router_noise, offset,
//         router_bias (e.g. "old:1", see grow.h)
//   shared_expert: init, scale, gate (see `moeforge add-shared-expert`)
inline constexpr const char* kCloneFromPlan = "plan";

struct EvalStage {
  int64_t block_size = 512;
  int64_t batch_size = 8;
  int64_t max_blocks = 0;                 // 0 = every validation block
  double validation_fraction = 0.05;      // used when the recipe holds out none
};

// Distillation of the trained model from a teacher (default: the base): the recipe's phases distil
// (those without losses.distill get the defaults); with `cache` the teacher runs once, in the
// teacher_cache stage, and training reads the cache instead of running it.
struct DistillStage {
  std::filesystem::path teacher;          // default: base
  bool cache = false;
  int64_t top_k = 64, router_top_k = 0, batch_size = 4;
  std::string codec = "compact";          // or "bf16" (teacher_cache_format.h)
};

struct ExportStage {
  bool remote_code = true;            // auto_map + modeling_moeforge.py where transformers needs it
  bool drop_selection_bias = false;   // merge: remove grow's selection bias, report the measured change
  // export.push: upload export/ to this Hub repo after the export stage (stage "push"; io/hub_push.h).
  std::string push_repo, push_revision;
  bool push_private = false;
};

struct PipelineConfig {
  std::filesystem::path config_path;      // for messages
  std::filesystem::path base;             // dense or MoE checkpoint (the baseline of every eval)
  std::filesystem::path tokenizer;        // default: base
  std::string data;                       // training data spec (paths resolved)
  std::string eval_data;                  // default: data (its held-out validation split)
  uint64_t seed = 0;
  std::string device = "cpu";             // where train, eval and stats run (not part of the job's identity)
  std::optional<StatsStage> stats;
  std::optional<AnalyzeStage> analyze;    // present whenever stats is (defaults)
  std::optional<surgery::UpcycleOptions> upcycle;
  std::optional<surgery::GrowOptions> grow;            // clone == kCloneFromPlan: from the analysis
  std::optional<surgery::SharedExpertOptions> shared_expert;
  nlohmann::json recipe;                  // inline recipe (a recipe file is read in); null = no training
  std::string recipe_label;               // recipe file name or "<config>:recipe"
  std::optional<DistillStage> distill;    // needs a recipe
  EvalStage eval;
  ExportStage export_stage;
  std::string model_name;                 // model card title; default: the run directory's name
  std::string base_model_id;              // the base's Hub repo id for the card when its path does not say
  bool report = true;
  nlohmann::json raw;                     // the config with paths resolved (stored as RUN_DIR/pipeline.json)
};

PipelineConfig parse_pipeline_config(const nlohmann::json& json, const std::filesystem::path& config_path);
PipelineConfig load_pipeline_config(const std::filesystem::path& path);

}  // namespace moeforge::pipeline
