// Progress display (see progress.h).
#include "common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace moeforge {

namespace {
bool g_enabled = true;
}

void set_progress_enabled(bool enabled) { g_enabled = enabled; }
bool progress_enabled() { return g_enabled; }

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled && g_enabled),
      tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (drawn_) std::cerr << "\n" << std::flush;
}

std::string Progress::clock(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60),
                static_cast<long long>(s % 60));
  return buf;
}

void Progress::update(int64_t done, const std::string& extra) {
  done_ = done;
  extra_ = extra;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
  if (drawn_) std::cerr << "\n" << std::flush;
  drawn_ = false;
}

void Progress::draw(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  const double eta = rate > 0 && total_ > done_ ? static_cast<double>(total_ - done_) / rate : 0.0;
  const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_)) : 1.0;
  char counts[160];
  std::snprintf(counts, sizeof counts, "%lld/%lld %s, %.0f %s/s, ETA %s", static_cast<long long>(done_),
                static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(), clock(eta).c_str());
  const std::string tail = extra_.empty() ? "" : "  " + extra_;
  if (tty_) {
    if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_draw_ = now;
    const int width = 24, filled = static_cast<int>(frac * width);
    std::cerr << "\r" << label_ << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << counts << tail
              << "\x1b[K" << std::flush;
    drawn_ = true;
    return;
  }
  const int64_t tenth = static_cast<int64_t>(frac * 10);
  if (tenth == last_tenth_) return;  // piped: one line per 10 % step (finish() adds none after it)
  last_tenth_ = tenth;
  std::cerr << label_ << ": " << static_cast<int>(frac * 100) << "% " << counts << tail << "\n" << std::flush;
}

}  // namespace moeforge
