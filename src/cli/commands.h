// Subcommand registry: each cmd_*.cpp registers its CLI11 subcommand with a static
// CommandRegistrar and attaches the action to run once flags are parsed. A subcommand only parses
// flags into a job's options struct and calls the job.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace moeforge::cli {

using Registration = std::function<void(CLI::App& app)>;

std::vector<Registration>& registered_commands();

struct CommandRegistrar {
  explicit CommandRegistrar(Registration registration) {
    registered_commands().push_back(std::move(registration));
  }
};

// Attaches the action run when `subcommand` (possibly nested) is the one the user chose.
void set_action(CLI::App* subcommand, std::function<int()> action);

// The process's argv as given (`--nproc` relaunches it as worker processes).
void set_command_line(int argc, char** argv);
const std::vector<std::string>& command_line();

// Runs the action of the deepest parsed subcommand; returns its exit code.
int run_selected(CLI::App& app);

// Lets a model (or tokenizer) option take a Hugging Face id: a value that is not an existing path
// but names a model in the local Hugging Face cache becomes its snapshot directory
// (common/hf_cache.h). Returns `option`.
CLI::Option* accepts_hub_id(CLI::Option* option);

}  // namespace moeforge::cli
