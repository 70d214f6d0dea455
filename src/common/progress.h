// The one progress display of every command: on a terminal a bar with counts, rate and ETA,
// redrawn at most 10 times a second; when stderr is piped, one line per 10 % (and the last), so
// logs stay readable. `moeforge --no-progress` (any command) or a command's own --no-progress
// silences it: set_progress_enabled(false).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moeforge {

void set_progress_enabled(bool enabled);
bool progress_enabled();

class Progress {
 public:
  // `label` starts each line ("eval", "stats"); `unit` names what is counted ("tokens").
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
  ~Progress();  // ends a drawn bar's line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` of `total` so far; `extra` is appended ("loss 2.31").
  void update(int64_t done, const std::string& extra = "");
  // Ends the display (the final state is shown once).
  void finish();

  // "01:02:03".
  static std::string clock(double seconds);

 private:
  std::string label_, unit_;
  int64_t total_ = 0, done_ = 0;
  bool enabled_ = true, tty_ = false, drawn_ = false, finished_ = false;
  int64_t last_tenth_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::string extra_;
  void draw(bool force);
};

}  // namespace moeforge
