// moeforge entry point: builds the CLI11 app from the registered subcommands and turns any
// moeforge::Error (or a filesystem error: an unwritable output) into one line on stderr and exit 1.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "common/error.h"

namespace {

// "PATH: cannot create directories: Permission denied" from libstdc++'s
// "filesystem error: cannot create directories: Permission denied [PATH]".
std::string filesystem_error_line(const std::filesystem::filesystem_error& e) {
  std::string text = e.what();
  const std::string prefix = "filesystem error: ";
  if (text.rfind(prefix, 0) == 0) text.erase(0, prefix.size());
  if (const size_t bracket = text.find(" ["); bracket != std::string::npos) text.erase(bracket);
  std::string where = e.path1().string();
  if (!e.path2().empty()) where += " -> " + e.path2().string();
  return where.empty() ? text : where + ": " + text;
}

}  // namespace

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
  } catch (const std::filesystem::filesystem_error& e) {
    // An unwritable, read-only or full output location is the user's to fix, not a bug: one line, exit 1.
    std::cerr << "moeforge: error: " << filesystem_error_line(e) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "moeforge: internal error: " << e.what() << "\n";
    return 2;
  }
}
