// moeforge entry point: builds the CLI11 app from the registered subcommands and turns any
// moeforge::Error (or a filesystem error: an unwritable output) into one line on stderr and exit 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "common/progress.h"

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

// `moeforge --help` lists the commands by task. One table, so a new command is placed here.
const char* group_of(const std::string& command) {
  static const std::vector<std::pair<const char*, std::vector<std::string>>> groups = {
      {"Pipeline", {"pipeline"}},
      {"Surgery", {"upcycle", "merge", "grow", "add-shared-expert"}},
      {"Analysis", {"stats", "analyze"}},
      {"Training", {"train", "train-expert", "merge-deltas", "teacher-cache"}},
      {"Evaluation", {"eval", "generate", "chat", "forward"}},
      {"Data and tokenizers", {"data", "select-data", "tokenize", "tokenizer", "chat-template"}},
      {"Inspection", {"info", "config", "report", "init"}},
      {"Sharing", {"push", "export-gguf"}},
  };
  for (const auto& [name, commands] : groups)
    if (std::find(commands.begin(), commands.end(), command) != commands.end()) return name;
  return "Other";
}

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "unknown command 'trian'; did you mean 'train'? See `moeforge --help`" for a first argument that
// is no command (CLI11 would say only "A subcommand is required").
std::string unknown_command(const CLI::App& app, const std::string& given) {
  std::string best;
  size_t best_distance = 3;  // suggest only near misses
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    const size_t d = edit_distance(given, sub->get_name());
    if (d < best_distance) best_distance = d, best = sub->get_name();
  }
  return "unknown command '" + given + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)") +
         "; see `moeforge --help` for the commands";
}

}  // namespace

int main(int argc, char** argv) {
  moeforge::cli::set_command_line(argc, argv);
  CLI::App app{"moeforge: build, grow, analyse and train Mixture-of-Experts language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moeforge ") + MOEFORGE_VERSION);
  for (const auto& registration : moeforge::cli::registered_commands()) registration(app);
  // --no-progress works on every command: a command without its own flag passes it up to here.
  bool no_progress = false;
  app.add_flag("--no-progress", no_progress, "no progress display on stderr (any command)");
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    sub->group(group_of(sub->get_name()));
    sub->fallthrough();
  }
  auto is_command = [&](const std::string& name) {
    return !app.get_subcommands([&](const CLI::App* sub) { return sub->get_name() == name; }).empty();
  };
  if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1])) {
    std::cerr << "moeforge: error: " << unknown_command(app, argv[1]) << "\n";
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    // Bad flags are bad input like any other: one line naming the command, exit 1.
    std::string where = "moeforge";
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      where += " " + sub->get_name();
    }
    std::cerr << "moeforge: error: " << e.what() << " (see `" << where << " --help`)\n";
    return 1;
  }
  moeforge::set_progress_enabled(!no_progress);
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
