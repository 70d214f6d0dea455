// The report's HTML sections, each rendered from already-parsed inputs. A section whose input is
// missing renders a "not available" note instead, so a partial run still gets a report.
#pragma once

#include <string>
#include <vector>

#include "report/eval_summary.h"
#include "report/stats_usage.h"
#include "report/train_metrics.h"

namespace moeforge::report {

// Phase table plus loss, learning-rate, auxiliary-loss, grad-norm and throughput charts.
std::string training_section(const TrainMetrics& metrics);
// KL, router drift and balance charts.
std::string router_section(const TrainMetrics& metrics);
// Experts below this fraction of the uniform share are named under the heat maps.
inline constexpr double kLowUsageFraction = 0.5;
// Before/after heat maps on one colour scale; either may be empty (no rows) = missing. Each is
// followed by the experts below kLowUsageFraction x uniform (or a line saying there are none).
std::string usage_section(const UsageMatrix& before, const UsageMatrix& after);
std::string eval_section(const std::vector<EvalTable>& tables);

// <p class="na">WHAT: not available (WHY)</p>
std::string not_available(const std::string& id, const std::string& what, const std::string& why);
// HTML-escaped text.
std::string html(const std::string& text);

}  // namespace moeforge::report
