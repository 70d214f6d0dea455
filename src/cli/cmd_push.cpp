// `moeforge push DIR --repo org/name [--private] [--revision R]`: upload a model directory to the
// Hugging Face Hub with the official client (io/hub_push.h).
#include "cli/commands.h"
#include "io/hub_push.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<PushOptions>();
  auto dir = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("push", "Upload a model directory to the Hugging Face Hub (through `hf upload`)");
  sub->add_option("dir", *dir, "the directory to upload (an export, a surgery output, a merged run)")->required();
  sub->add_option("--repo", o->repo, "Hub repo id, org/name (created if absent)")->required();
  sub->add_option("--revision", o->revision, "branch to upload to (default: the repo's default branch)");
  sub->add_flag("--private", o->private_repo, "create the repo private when it does not exist yet");
  sub->add_option("--message", o->commit_message, "commit message");
  set_action(sub, [o, dir] {
    o->dir = *dir;
    push_to_hub(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
