// `moeforge pipeline CONFIG --out RUN_DIR`: runs the whole job from one config into one run
// directory, stage by stage, skipping each stage whose output is already complete (so a re-run
// after an interruption resumes; training resumes mid-phase from its last checkpoint).
//
// RUN_DIR layout (each entry is written atomically: a temp path renamed into place when complete):
//   pipeline.json      the job (paths absolute); a re-run with a different job is refused
//   upcycled/          surgery.upcycle output          grown/   surgery.grow output
//   stats_before/      router stats of the MoE before  plan.json  analyze's plan (clone choices)
//   shared/            surgery.shared_expert output
//   train/             `moeforge train` run (metrics.jsonl, tensorboard/, checkpoints/, trainable.safetensors)
//   model/             the trained model (merge-deltas of train/ into the surgery output)
//   eval.json          validation eval of the base, the surgery output and the trained model
//   stats_after/       router stats of the final model      export/  HF checkpoint + model card README.md
//   report.html        `moeforge report` of the run (regenerated on every run)
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace moeforge::pipeline {

struct PipelineOptions {
  std::filesystem::path config;
  std::filesystem::path run_dir;
  std::string until;       // stop after this stage ("" = run everything)
  bool progress = true;    // progress bars of the long stages on stderr
  std::string version;     // moeforge version for the model card
};

// The stage names, in order; `until` must be one of them.
const std::vector<std::string>& stage_names();

// Returns the stages that ran (not skipped), in order.
std::vector<std::string> run_pipeline(const PipelineOptions& options);

}  // namespace moeforge::pipeline
