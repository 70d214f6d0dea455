// Recursive, depth-limited search for report inputs (see run_files.h).
#include "report/run_files.h"

#include <algorithm>

#include "common/error.h"
#include "common/strings.h"

namespace moeforge::report {

namespace fs = std::filesystem;

RunFiles find_run_files(const fs::path& run_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) fail(run_dir.string(), ": not a directory");
  RunFiles files;
  fs::recursive_directory_iterator it(run_dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) fail(run_dir.string(), ": cannot list: ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) fail(run_dir.string(), ": cannot list: ", ec.message());
    const std::string name = it->path().filename().string();
    if (starts_with(name, ".")) {  // .tmp-* siblings of outputs still being written
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) {
      if (it.depth() >= kMaxSearchDepth) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (name == "metrics.jsonl") files.metrics.push_back(it->path());
    else if (name == "stats.json") files.stats.push_back(it->path());
    else if (starts_with(name, "eval") && ends_with(name, ".json")) files.evals.push_back(it->path());
  }
  for (auto* list : {&files.metrics, &files.stats, &files.evals}) std::sort(list->begin(), list->end());
  return files;
}

}  // namespace moeforge::report
