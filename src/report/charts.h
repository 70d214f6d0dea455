// The report's two figure kinds as inline SVG elements: line charts over training steps (phase
// spans shaded and labelled) and layer x expert usage heat maps.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "report/stats_usage.h"
#include "report/train_metrics.h"

namespace moeforge::report {

struct Series {
  std::string name;                               // legend entry ("" = not in the legend)
  std::vector<std::pair<double, double>> points;  // (step, value); non-finite values break the line
  std::string color;
  double width = 1.8, opacity = 1.0;
};

// Steps on x, values on y; `phases` are shaded alternately with a dashed line at each boundary.
std::string line_chart(const std::string& title, const std::string& y_label, const std::vector<Series>& series,
                       const std::vector<PhaseSpan>& phases);

// Rows = layers, columns = experts; colour = share x number of experts (1 = uniform), scaled to
// `vmax` so that two maps drawn with the same vmax compare.
std::string usage_heatmap(const std::string& title, const UsageMatrix& usage, double vmax);
// Largest share x experts of the matrix (the natural vmax).
double usage_peak(const UsageMatrix& usage);

}  // namespace moeforge::report
