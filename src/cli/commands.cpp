#include "cli/commands.h"

#include "common/hf_cache.h"

#include <map>

#include "common/error.h"

namespace moeforge::cli {
namespace {
std::map<CLI::App*, std::function<int()>>& actions() {
  static std::map<CLI::App*, std::function<int()>> table;
  return table;
}
}  // namespace

std::vector<Registration>& registered_commands() {
  static std::vector<Registration> registry;
  return registry;
}

void set_action(CLI::App* subcommand, std::function<int()> action) {
  actions()[subcommand] = std::move(action);
}

namespace {
std::vector<std::string>& stored_command_line() {
  static std::vector<std::string> args;
  return args;
}
}  // namespace

void set_command_line(int argc, char** argv) { stored_command_line().assign(argv, argv + argc); }
const std::vector<std::string>& command_line() { return stored_command_line(); }

int run_selected(CLI::App& app) {
  CLI::App* selected = &app;
  while (true) {
    auto chosen = selected->get_subcommands();
    if (chosen.empty()) break;
    selected = chosen.front();
  }
  auto it = actions().find(selected);
  if (it == actions().end()) fail("subcommand '", selected->get_name(), "' needs a further subcommand; see --help");
  return it->second();
}

CLI::Option* accepts_hub_id(CLI::Option* option) {
  return option->transform([](std::string value) { return resolve_hub_reference(value); }, "", "");
}

}  // namespace moeforge::cli
