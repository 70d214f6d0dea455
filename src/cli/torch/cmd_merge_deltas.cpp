// `moeforge merge-deltas BASE RUN_DIR --out DIR`: a full checkpoint = BASE with the run's
// trainable.safetensors substituted (streaming; untouched tensors copied byte for byte).
#include <iostream>

#include "cli/commands.h"
#include "train/export.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<train::MergeOptions>();
  auto base = std::make_shared<std::string>(), run = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("merge-deltas", "Write BASE with a training run's trained tensors merged in (full checkpoint)");
  accepts_hub_id(sub->add_option("base", *base, "base model directory the run trained"))->required();
  sub->add_option("run", *run, "run directory of `moeforge train` (holds trainable.safetensors)")->required();
  sub->add_option("--out", *out, "output model directory")->required();
  sub->add_flag("--overwrite", o->overwrite, "replace an existing output directory");
  auto no_remote_code = std::make_shared<bool>(false);
  sub->add_flag("--no-remote-code", *no_remote_code,
                "write the plain family even where transformers then ignores a moeforge shared expert or selection bias");
  sub->add_flag("--drop-selection-bias", o->drop_selection_bias,
                "remove grow's selection-only bias (moeforge_selection_bias) and print the logit change measured");
  set_action(sub, [o, base, run, out, no_remote_code] {
    o->remote_code = !*no_remote_code;
    o->base = *base;
    o->run = *run;
    o->out = *out;
    size_t replaced = train::merge_deltas(*o);
    std::cout << "wrote " << *out << " (" << replaced << " tensors from " << *run << "/trainable.safetensors)\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
