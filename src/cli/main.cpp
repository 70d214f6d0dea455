// moeforge entry point: builds the CLI11 app from the registered subcommands and turns any
// moeforge::Error into one line on stderr and a non-zero exit.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"moeforge: build, grow, analyse and train Mixture-of-Experts language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moeforge ") + MOEFORGE_VERSION);
  for (const auto& registration : moeforge::cli::registered_commands()) registration(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return moeforge::cli::run_selected(app);
  } catch (const moeforge::Error& e) {
    std::cerr << "moeforge: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "moeforge: internal error: " << e.what() << "\n";
    return 2;
  }
}
