// Expert usage (layers x experts) for the report's heat maps, from a `moeforge stats` stats.json
// (src/stats/router_stats.cpp, "moeforge.router_stats") or from a metrics.jsonl "load" record.
// Parsed here rather than with stats::read_stats because that lives in the libtorch library.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "report/train_metrics.h"

namespace moeforge::report {

struct UsageMatrix {
  std::string source;                      // where the numbers came from, for the caption
  std::vector<std::string> rows;           // row labels ("layer 3")
  std::vector<std::vector<double>> share;  // [row][expert] share of top-k picks, each row sums to 1
};

// Reads layers[].usage (or counts, normalised) of a stats.json; throws Error naming the file when
// it is not valid JSON, not a moeforge stats file, or has ragged/non-numeric rows.
UsageMatrix read_stats_usage(const std::filesystem::path& file);

// Experts whose share is below `fraction` x uniform (1/E of the picks): [row, expert, share].
struct LowUsage {
  size_t row = 0, expert = 0;
  double share = 0;
};
std::vector<LowUsage> low_usage_experts(const UsageMatrix& usage, double fraction);

// The first (`last` = false) or last record's "load" of the training log; empty share if none.
UsageMatrix usage_from_metrics(const TrainMetrics& metrics, bool last);

}  // namespace moeforge::report
