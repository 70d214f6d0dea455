// Learning-rate schedule factors (see schedule.h for the formulas).
#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace moeforge::train {

int64_t warmup_steps(const ScheduleOptions& o, int64_t total) {
  int64_t w = o.warmup_steps > 0 ? o.warmup_steps : static_cast<int64_t>(std::floor(o.warmup_fraction * total));
  const int64_t cap = static_cast<int64_t>(std::floor(o.warmup_max_fraction * total));
  return std::max<int64_t>(0, std::min(w, cap));
}

double lr_factor(const ScheduleOptions& o, int64_t s, int64_t total) {
  const int64_t W = warmup_steps(o, total);
  if (s < W) return o.warmup_start + (1.0 - o.warmup_start) * static_cast<double>(s + 1) / static_cast<double>(W);
  const double p = std::clamp(static_cast<double>(s - W) / static_cast<double>(std::max<int64_t>(1, total - W)), 0.0, 1.0);
  const double lo = o.min_lr_ratio;
  auto cosine = [&](double q) { return lo + (1.0 - lo) * 0.5 * (1.0 + std::cos(M_PI * q)); };
  switch (o.kind) {
    case ScheduleKind::Constant: return 1.0;
    case ScheduleKind::Linear: return 1.0 - (1.0 - lo) * p;
    case ScheduleKind::Cosine: return cosine(p);
    case ScheduleKind::InverseSqrt: {
      const double T = static_cast<double>(o.timescale > 0 ? o.timescale : std::max<int64_t>(W, 1));
      return 1.0 / std::sqrt((static_cast<double>(s - W) + T) / T);
    }
    case ScheduleKind::WarmupStableDecay: {
      // Stable for stable_fraction of the whole phase after warmup, then decay over the rest.
      const int64_t stable_end = std::min<int64_t>(total, W + static_cast<int64_t>(std::floor(o.stable_fraction * total)));
      if (s < stable_end) return 1.0;
      const double q = static_cast<double>(s - stable_end) / static_cast<double>(std::max<int64_t>(1, total - stable_end));
      return o.decay_shape == "linear" ? 1.0 - (1.0 - lo) * q : cosine(q);
    }
  }
  return 1.0;
}

}  // namespace moeforge::train
