// Learning-rate schedules: linear warmup, then constant, linear, cosine, inverse-sqrt or
// warmup-stable-decay, as a factor of the peak lr for each step of a phase.
#pragma once

#include <cstdint>

#include "train/recipe.h"

namespace moeforge::train {

// Warmup steps actually used: warmup_steps (or warmup_fraction * steps), capped at
// warmup_max_fraction * steps.
int64_t warmup_steps(const ScheduleOptions& options, int64_t total_steps);

// Factor of the peak lr for step `step` (0-based) of `total_steps`:
//   warmup (s < W):    start + (1 - start) * (s + 1) / W
//   then p = (s - W) / (total - W) in [0, 1):
//   constant 1 | linear 1 - (1 - min) p | cosine min + (1 - min)(1 + cos(pi p)) / 2 |
//   inverse_sqrt 1 / sqrt((s - W + T) / T) | wsd: 1 for the stable part, then the decay shape to min.
double lr_factor(const ScheduleOptions& options, int64_t step, int64_t total_steps);

}  // namespace moeforge::train
