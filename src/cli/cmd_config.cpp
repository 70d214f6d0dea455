// `moeforge config FILE`: prints a config file (recipe, pipeline job; JSON or TOML) as the JSON
// moeforge reads from it, so a TOML recipe can be checked before a run.
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "io/toml.h"

namespace moeforge::cli {
namespace {

struct ConfigCommand {
  std::vector<std::string> files;
  bool lines = false;

  int run() const {
    if (!lines) {
      for (const auto& f : files) std::cout << read_config_file(f).dump(2) << "\n";
      return 0;
    }
    // One compact line per file, errors included, so many files are checked in one run.
    int failed = 0;
    for (const auto& f : files) {
      try {
        std::cout << nlohmann::json{{"file", f}, {"json", read_config_file(f)}}.dump() << "\n";
      } catch (const Error& e) {
        std::cout << nlohmann::json{{"file", f}, {"error", e.what()}}.dump() << "\n";
        ++failed;
      }
    }
    return failed ? 1 : 0;
  }
};

CommandRegistrar registrar([](CLI::App& app) {
  auto c = std::make_shared<ConfigCommand>();
  auto* sub = app.add_subcommand("config", "Print JSON or TOML config files (recipes, pipeline jobs) as the JSON moeforge reads");
  sub->add_option("files", c->files, "config files (.toml is TOML, anything else JSON)")->required();
  sub->add_flag("--lines", c->lines, "one line per file: {\"file\", \"json\"} or {\"file\", \"error\"}; exit 1 if any failed");
  set_action(sub, [c] { return c->run(); });
});

}  // namespace
}  // namespace moeforge::cli
