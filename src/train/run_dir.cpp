#include "train/run_dir.h"

#include <torch/torch.h>

#include <iostream>

#include "common/error.h"
#include "data/data_spec.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "train/run_checkpoint.h"

namespace moeforge::train {

namespace fs = std::filesystem;

namespace {

// Something a later --resume could continue from: a checkpoint or a finished run's output.
bool has_progress(const fs::path& run_dir) {
  std::error_code ec;
  const fs::path checkpoints = run_dir / "checkpoints";
  const bool any_checkpoint = fs::is_directory(checkpoints, ec) && !fs::is_empty(checkpoints, ec);
  return any_checkpoint || fs::exists(run_dir / "trainable.safetensors", ec);
}

// The paths of JSON values that differ between two recipes ("/phases/0/steps", ...), at most `max`.
std::string recipe_changes(const nlohmann::json& before, const nlohmann::json& after, size_t max = 4) {
  std::string out;
  size_t n = 0;
  for (const auto& op : nlohmann::json::diff(before, after)) {
    if (n++ < max) out += (out.empty() ? "" : ", ") + op.at("path").get<std::string>();
  }
  if (n > max) out += " and " + std::to_string(n - max) + " more";
  return out;
}

}  // namespace

TrainOptions resolve_run_options(TrainOptions o) {
  if (o.out_dir.empty()) fail("train: --out RUN_DIR is required");
  // Phases' own data specs, like --data, become absolute: recipe.json then means the same files anywhere.
  auto absolute_data = [](nlohmann::json& phase) {
    if (phase.is_object() && phase.contains("data") && phase["data"].is_string())
      phase["data"] = data::resolve_data_spec(fs::current_path(), phase["data"].get<std::string>());
  };
  if (o.recipe.is_object()) {
    if (o.recipe.contains("defaults")) absolute_data(o.recipe["defaults"]);
    if (o.recipe.contains("phases") && o.recipe["phases"].is_array())
      for (auto& phase : o.recipe["phases"]) absolute_data(phase);
  }

  const fs::path run_json = o.out_dir / "run.json";
  if (o.resume) {
    if (!fs::exists(run_json)) fail(o.out_dir.string(), ": not a training run directory (no run.json)");
    auto run = read_json_file(run_json);
    // What the command gives overrides what run.json recorded, said field by field; run.json is
    // rewritten with it (Trainer: rewrite_run_files) so the next --resume means the same run.
    std::vector<std::string> changes;
    auto take = [&](const char* key, std::string given, bool path) -> std::string {
      const std::string had = run.value(key, std::string());
      if (given.empty()) return had;
      const std::string now = path ? fs::absolute(given).string() : given;
      std::error_code ec;
      if (path && !had.empty() && fs::equivalent(now, had, ec)) return had;  // the same directory, spelt otherwise
      if (now != had) changes.push_back(std::string(key) + ": " + (had.empty() ? "(none)" : had) + " -> " + now);
      return now;
    };
    o.model_dir = take("model", o.model_dir.string(), true);
    if (!o.data_spec.empty()) o.data_spec = data::resolve_data_spec(fs::current_path(), o.data_spec);
    o.data_spec = take("data", o.data_spec, false);
    o.tokenizer_dir = take("tokenizer", o.tokenizer_dir.string(), true);
    if (o.analysis_plan.empty() && run.contains("plan")) o.analysis_plan = run.at("plan").get<std::string>();
    if (o.teacher_cache.empty() && o.teacher_dir.empty() && run.contains("teacher_cache"))
      o.teacher_cache = run.at("teacher_cache").get<std::string>();
    if (o.teacher_dir.empty() && o.teacher_cache.empty() && run.contains("teacher")) o.teacher_dir = run.at("teacher").get<std::string>();
    if (o.device.empty() && run.contains("device")) o.device = run.at("device").get<std::string>();
    if (o.teacher_device.empty() && run.contains("teacher_device")) o.teacher_device = run.at("teacher_device").get<std::string>();
    // How MXFP4 experts were held fixes the checkpoint's tensor shapes: the run's choice stands.
    const bool recorded_dense = run.value("dequantize", false);
    if (o.dequantize && !recorded_dense)
      fail(o.out_dir.string(), ": --dequantize on --resume of a run that kept MXFP4 experts packed; resume without it");
    o.dequantize = recorded_dense;
    const nlohmann::json stored = read_json_file(o.out_dir / "recipe.json");
    if (o.recipe.is_null()) {
      o.recipe = stored;
      o.recipe_label = (o.out_dir / "recipe.json").string();
    } else if (o.recipe != stored) {
      changes.push_back("recipe: " + recipe_changes(stored, o.recipe));
    }
    if (!changes.empty()) {
      std::string said;
      for (const auto& c : changes) said += "\n  " + c;
      std::cerr << "moeforge: --resume " << o.out_dir.string() << " with changes to what it recorded:" << said << "\n";
      o.rewrite_run_files = true;
    }
  } else if (fs::exists(run_json) && !has_progress(o.out_dir)) {
    // An earlier run that stopped before its first checkpoint (a bad recipe, data, probe): nothing to
    // continue, so the corrected command may start over in the same directory.
    std::cerr << "moeforge: note: " << o.out_dir.string() << " holds a run that stopped before its first checkpoint; starting it over\n";
    for (const char* stale : {"metrics.jsonl", "tensorboard", "checkpoints"}) fs::remove_all(o.out_dir / stale);
  } else if (fs::exists(run_json) || fs::exists(o.out_dir / "checkpoints")) {
    fail(o.out_dir.string(), " already holds a training run; continue it with --resume ", o.out_dir.string(),
         " or choose another --out");
  } else if (fs::is_directory(o.out_dir) && !fs::is_empty(o.out_dir)) {
    fail(o.out_dir.string(), ": not empty and not a training run (no run.json); choose another --out or an empty directory");
  }
  if (o.tokenizer_dir.empty()) o.tokenizer_dir = o.model_dir;
  if (o.device.empty()) o.device = "cpu";
  // Absolute, so run.json (and --resume) mean the same files from any working directory.
  if (!o.data_spec.empty()) o.data_spec = data::resolve_data_spec(fs::current_path(), o.data_spec);
  return o;
}

void write_run_files(const TrainOptions& o) {
  fs::create_directories(o.out_dir);
  nlohmann::json run = {{"model", fs::absolute(o.model_dir).string()}, {"data", o.data_spec},
                        {"tokenizer", fs::absolute(o.tokenizer_dir).string()}, {"device", o.device}, {"moeforge_train", 1}};
  if (!o.analysis_plan.empty()) run["plan"] = fs::absolute(o.analysis_plan).string();
  if (!o.teacher_dir.empty()) run["teacher"] = fs::absolute(o.teacher_dir).string();
  if (!o.teacher_cache.empty()) run["teacher_cache"] = fs::absolute(o.teacher_cache).string();
  if (!o.teacher_device.empty()) run["teacher_device"] = o.teacher_device;
  if (o.dequantize) run["dequantize"] = true;
  write_file_atomic(o.out_dir / "run.json", run.dump(2) + "\n");
  write_file_atomic(o.out_dir / "recipe.json", o.recipe.dump(2) + "\n");
}

void write_run_summary(const fs::path& run_dir, int64_t steps, const std::vector<std::string>& trainable,
                       const Selection& changed, const std::map<int64_t, torch::Tensor>& aux_bias) {
  if (!aux_bias.empty()) {
    nlohmann::json biases = nlohmann::json::object();
    for (const auto& [l, b] : aux_bias) {
      auto c = b.to(torch::kCPU, torch::kFloat64).contiguous();
      biases[std::to_string(l)] = std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
    }
    write_file_atomic(run_dir / "selection_bias.json", nlohmann::json{{"layers", biases}}.dump(2) + "\n");
  }
  nlohmann::json summary = {{"steps", steps}, {"trainable", trainable}, {"changed", selection_to_json(changed)}};
  write_file_atomic(run_dir / "summary.json", summary.dump(2) + "\n");
}

}  // namespace moeforge::train
