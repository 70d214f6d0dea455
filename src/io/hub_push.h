// `moeforge push DIR --repo org/name`: uploads a finished output to the Hugging Face Hub through
// the official client (`hf upload`, from huggingface_hub), never a home-made HTTP client. The
// token comes from the environment (HF_TOKEN) or the client's own login and is never printed or
// passed on the command line. Checked before anything runs: the directory, the repo id, the
// client on PATH, a token; the client's failure (no network, no access) is reported with exit 1.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace moeforge {

struct PushOptions {
  std::filesystem::path dir;
  std::string repo;      // "org/name"
  std::string revision;  // branch (empty: the default branch)
  bool private_repo = false;
  std::string commit_message;  // empty: "Upload <dir name> with moeforge"
};

// What a push needs before it can start, checked without the directory (a pipeline checks this
// before its first stage): a Hub repo id, the `hf` client on PATH, a token. Throws naming the gap.
void check_push_prerequisites(const std::string& repo, const std::string& what = "push");

// The `hf` arguments (after the program name) for `options`; validates them (throws naming what is wrong).
std::vector<std::string> hf_upload_arguments(const PushOptions& options);

// Runs `hf upload ...`; returns when it succeeded, throws otherwise.
void push_to_hub(const PushOptions& options);

}  // namespace moeforge
