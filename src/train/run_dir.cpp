#include "train/run_dir.h"

#include <torch/torch.h>

#include "common/error.h"
#include "data/data_spec.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "train/run_checkpoint.h"

namespace moeforge::train {

namespace fs = std::filesystem;

TrainOptions resolve_run_options(TrainOptions o) {
  if (o.out_dir.empty()) fail("train: --out RUN_DIR is required");
  const fs::path run_json = o.out_dir / "run.json";
  if (o.resume) {
    if (!fs::exists(run_json)) fail(o.out_dir.string(), ": not a training run directory (no run.json)");
    auto run = read_json_file(run_json);
    if (o.model_dir.empty()) o.model_dir = run.at("model").get<std::string>();
    if (o.data_spec.empty()) o.data_spec = run.at("data").get<std::string>();
    if (o.tokenizer_dir.empty()) o.tokenizer_dir = run.at("tokenizer").get<std::string>();
    if (o.analysis_plan.empty() && run.contains("plan")) o.analysis_plan = run.at("plan").get<std::string>();
    if (o.teacher_cache.empty() && o.teacher_dir.empty() && run.contains("teacher_cache"))
      o.teacher_cache = run.at("teacher_cache").get<std::string>();
    if (o.teacher_dir.empty() && o.teacher_cache.empty() && run.contains("teacher")) o.teacher_dir = run.at("teacher").get<std::string>();
    if (o.device.empty() && run.contains("device")) o.device = run.at("device").get<std::string>();
    if (o.teacher_device.empty() && run.contains("teacher_device")) o.teacher_device = run.at("teacher_device").get<std::string>();
    o.recipe = read_json_file(o.out_dir / "recipe.json");
    o.recipe_label = (o.out_dir / "recipe.json").string();
  } else if (fs::exists(o.out_dir / "checkpoints") || fs::exists(run_json)) {
    fail(o.out_dir.string(), " already holds a training run; continue it with --resume ", o.out_dir.string(),
         " or choose another --out");
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
