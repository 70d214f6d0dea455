// The training log a report plots: metrics.jsonl records (src/train/metrics.cpp, one JSON object
// per logged step) from one or more train runs, joined into one step axis.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace moeforge::report {

struct MetricsRecord {
  double step = 0;                                        // on the joined axis (see read_train_metrics)
  std::string phase;                                      // "" when the record has none
  std::map<std::string, double> scalars;                  // numeric fields (NaN logged as null: absent)
  std::map<std::string, std::vector<double>> per_layer;   // numeric arrays, e.g. router_drift_per_layer
  std::vector<std::vector<double>> load;                  // "load": per MoE layer, per expert pick share
};

struct TrainMetrics {
  std::vector<MetricsRecord> records;
  std::vector<std::filesystem::path> files;
};

// A contiguous run of records of one phase: the span a chart shades and labels.
struct PhaseSpan {
  std::string name;
  double first_step = 0, last_step = 0;
  size_t first = 0, last = 0;  // record indices, inclusive
};

// Parses one metrics.jsonl; an unparsable line, a line that is not an object, or a missing or
// non-numeric "step" throws Error naming "FILE:LINE". Blank lines are ignored.
std::vector<MetricsRecord> read_metrics_file(const std::filesystem::path& file);

// Reads every file in order. Each train run restarts its step count, so a file whose first step is
// not after the previous file's last step is shifted to follow it; with several files each phase
// name is prefixed with the file's directory (relative to `run_dir`) to keep stages apart.
TrainMetrics read_train_metrics(const std::vector<std::filesystem::path>& files, const std::filesystem::path& run_dir);

std::vector<PhaseSpan> phase_spans(const TrainMetrics& metrics);

// (step, value) of `key` over all records that have it.
std::vector<std::pair<double, double>> series(const TrainMetrics& metrics, const std::string& key);
// Keys present in at least one record, matching `pred`, sorted.
std::vector<std::string> scalar_keys(const TrainMetrics& metrics, bool (*pred)(const std::string&));

}  // namespace moeforge::report
