// Training metrics: one JSON line per logged step (metrics.jsonl), the same scalars as TensorBoard
// events (tensorboard/), and a progress bar with ETA on stderr when it is a terminal.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "train/tensorboard.h"

namespace moeforge::train {

struct MetricsOptions {
  bool tensorboard = true;
  bool progress = true;  // only drawn when stderr is a TTY; otherwise a plain line every ~10 %
};

class MetricsLog {
 public:
  // Opens <run>/metrics.jsonl for appending; `keep_through_step` >= 0 first drops records of later
  // steps (a resumed run redoes them).
  MetricsLog(const std::filesystem::path& run_dir, int64_t keep_through_step, MetricsOptions options);
  ~MetricsLog();
  // `record` holds "step" plus scalars and arrays; scalars also go to TensorBoard as train/<key>.
  void log(const nlohmann::json& record);
  // Progress line for step `done` of `total` in the phase.
  void progress(const std::string& phase, int64_t done, int64_t total, double loss, double lr, double tokens_per_s);
  void end_progress();

 private:
  std::ofstream out_;
  std::unique_ptr<TensorBoardWriter> tb_;
  bool tty_ = false, drawn_ = false;
  MetricsOptions options_;
  std::chrono::steady_clock::time_point phase_start_;
  std::string phase_;
  int64_t phase_first_ = 0, last_plain_ = -1;
};

}  // namespace moeforge::train
