// Upload through `hf upload` (see hub_push.h).
#include "io/hub_push.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>

#include "common/error.h"
#include "common/hf_cache.h"

namespace moeforge {

namespace fs = std::filesystem;

namespace {

// The program `name` on PATH, or "".
std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    const fs::path candidate = fs::path(dirs.substr(start, colon - start).empty() ? "." : dirs.substr(start, colon - start)) / name;
    if (access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate.string();
    start = colon + 1;
  }
  return "";
}

bool have_token() {
  for (const char* var : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})
    if (const char* v = std::getenv(var); v && *v) return true;
  fs::path token_file;
  if (const char* p = std::getenv("HF_TOKEN_PATH"); p && *p) token_file = p;
  else if (const char* h = std::getenv("HF_HOME"); h && *h) token_file = fs::path(h) / "token";
  else token_file = fs::path(std::getenv("HOME") ? std::getenv("HOME") : "") / ".cache" / "huggingface" / "token";
  std::error_code ec;
  return fs::is_regular_file(token_file, ec) && fs::file_size(token_file, ec) > 0;
}

}  // namespace

static void check_repo_id(const std::string& repo, const std::string& what) {
  if (repo.find('/') == std::string::npos || repo.find('@') != std::string::npos || !looks_like_hub_id(repo))
    fail(what, ": '", repo, "' is not a Hub repo id (org/name)");
}

void check_push_prerequisites(const std::string& repo, const std::string& what) {
  check_repo_id(repo, what);
  if (on_path("hf").empty())
    fail(what, ": the Hugging Face client `hf` is not on PATH; install it with `pip install -U huggingface_hub` "
               "(moeforge uploads through it)");
  if (!have_token())
    fail(what, ": no Hugging Face token: set HF_TOKEN in the environment or run `hf auth login` (the token is never printed)");
}

std::vector<std::string> hf_upload_arguments(const PushOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.dir, ec)) fail("push: ", o.dir.string(), ": no such directory");
  if (fs::is_empty(o.dir, ec)) fail("push: ", o.dir.string(), ": empty directory, nothing to upload");
  check_repo_id(o.repo, "push: --repo");
  std::vector<std::string> args = {"upload", o.repo, o.dir.string(), ".", "--repo-type", "model"};
  if (!o.revision.empty()) args.insert(args.end(), {"--revision", o.revision});
  args.push_back(o.private_repo ? "--private" : "--no-private");
  args.insert(args.end(), {"--commit-message", o.commit_message.empty()
                                                   ? "Upload " + fs::absolute(o.dir).lexically_normal().filename().string() + " with moeforge"
                                                   : o.commit_message});
  return args;
}

void push_to_hub(const PushOptions& o) {
  const std::vector<std::string> args = hf_upload_arguments(o);
  check_push_prerequisites(o.repo);
  const std::string hf = on_path("hf");
  std::cout << "push: hf upload " << o.repo << " " << o.dir.string() << (o.revision.empty() ? "" : " (revision " + o.revision + ")")
            << std::endl;
  std::vector<char*> argv;
  std::string program = hf;
  argv.push_back(program.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) fail("push: cannot start ", hf);
  if (pid == 0) {
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("push: lost the `hf upload` process");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("push: `hf upload` failed (", WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : std::string("killed"),
         "); its message is above (no network? no write access to ", o.repo, "?)");
  std::cout << "push: uploaded " << o.dir.string() << " to https://huggingface.co/" << o.repo << "\n";
}

}  // namespace moeforge
