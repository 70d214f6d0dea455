// SVG figures of an analysis (`moeforge analyze --plots DIR`):
//   usage_heatmap.svg          layers x experts, usage relative to uniform (1/E)
//   coactivation_layer{L}.svg  experts x experts: tokens that picked both (diagonal greyed)
//   domain_usage_layer{L}.svg  per-expert usage share within each data domain, grouped bars
//   pca_importance.svg         layers x experts PCA importance (per-layer max = 1), top-K outlined
// L = --plot-layer, default the least balanced MoE layer.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "stats/analyze_job.h"

namespace moeforge::stats {

// Writes the figures into `dir` (created); returns the files written. `plot_layer` < 0: default.
std::vector<std::filesystem::path> write_plots(const Analysis& analysis, const std::filesystem::path& dir, int64_t plot_layer = -1);

}  // namespace moeforge::stats
