// `moeforge info MODEL_DIR [--json]`: family, sizes, experts, parameter counts, dtypes and memory.
#include <iostream>
#include <nlohmann/json.hpp>

#include "arch/model_summary.h"
#include "cli/commands.h"
#include "io/checkpoint_store.h"

namespace moeforge::cli {
namespace {

struct InfoOptions {
  std::string model_dir;
  bool json = false;
};

CommandRegistrar info_command([](CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  auto* sub = app.add_subcommand("info", "Describe a model directory: family, sizes, experts, parameters, memory");
  sub->add_option("MODEL_DIR", options->model_dir, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  sub->add_flag("--json", options->json, "Print JSON instead of a table");
  set_action(sub, [options] {
    auto store = CheckpointStore::open(options->model_dir);
    ModelSummary summary = summarize_model(*store);
    if (options->json) std::cout << summary_to_json(summary).dump(2) << "\n";
    else std::cout << summary_to_table(summary);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
