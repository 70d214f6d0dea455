// `moeforge pipeline CONFIG --out RUN_DIR [--until STAGE]`: the whole job from one declarative
// config (pipeline/pipeline.h; docs/PIPELINE.md). Re-running resumes: finished stages are skipped.
#include <iostream>

#include "cli/commands.h"
#include "pipeline/pipeline.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<pipeline::PipelineOptions>();
  auto no_progress = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("pipeline", "Run a whole job (stats, surgery, training, eval, export, report) from one config");
  sub->add_option("config", o->config, "pipeline job: a .json or .toml file (docs/PIPELINE.md; `moeforge config FILE` prints it as the JSON read)")->required();
  sub->add_option("--out", o->run_dir, "run directory (re-running with the same config resumes)")->required();
  sub->add_option("--until", o->until, "stop after this stage");
  sub->add_flag("--no-progress", *no_progress, "no progress bars on stderr");
  set_action(sub, [o, no_progress] {
    o->progress = !*no_progress;
    o->version = MOEFORGE_VERSION;
    const auto ran = pipeline::run_pipeline(*o);
    std::cout << "pipeline: " << ran.size() << " stage(s) ran; everything is in " << o->run_dir.string() << "\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
