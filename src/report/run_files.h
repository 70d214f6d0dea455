// Finds the inputs of a report under a run directory. Other commands decide where they write
// (train runs, stats before/after, eval), so the report searches instead of assuming one layout.
#pragma once

#include <filesystem>
#include <vector>

namespace moeforge::report {

inline constexpr int kMaxSearchDepth = 3;  // RUN_DIR/a/b/c/<file> is the deepest file looked at

struct RunFiles {
  std::vector<std::filesystem::path> metrics;  // metrics.jsonl files, in path order
  std::vector<std::filesystem::path> stats;    // stats.json files (moeforge stats), in path order
  std::vector<std::filesystem::path> evals;    // eval*.json files (moeforge eval --json), in path order
};

// Searches `run_dir` (which must be a directory) down to kMaxSearchDepth; hidden entries (temporary
// directories of unfinished writes) are skipped and symlinked directories are not followed.
RunFiles find_run_files(const std::filesystem::path& run_dir);

}  // namespace moeforge::report
