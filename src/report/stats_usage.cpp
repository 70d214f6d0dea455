// stats.json / metrics "load" -> usage matrix (see stats_usage.h).
#include "report/stats_usage.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge::report {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

std::vector<double> numbers(const Json& v, const std::string& where) {
  if (!v.is_array()) fail(where, " must be an array of numbers");
  std::vector<double> out;
  for (const auto& x : v) {
    if (!x.is_number()) fail(where, " must be an array of numbers");
    out.push_back(x.get<double>());
  }
  return out;
}

std::vector<double> normalised(std::vector<double> v) {
  double total = 0;
  for (double x : v) total += std::isfinite(x) ? x : 0.0;
  for (double& x : v) x = total > 0 && std::isfinite(x) ? x / total : 0.0;
  return v;
}

}  // namespace

std::vector<LowUsage> low_usage_experts(const UsageMatrix& usage, double fraction) {
  std::vector<LowUsage> out;
  for (size_t r = 0; r < usage.share.size(); ++r) {
    const auto& row = usage.share[r];
    const double limit = row.empty() ? 0.0 : fraction / static_cast<double>(row.size());
    for (size_t e = 0; e < row.size(); ++e)
      if (row[e] < limit) out.push_back({r, e, row[e]});
  }
  return out;
}

UsageMatrix read_stats_usage(const fs::path& file) {
  const std::string label = file.string();
  const Json root = read_json_file(file);
  if (!root.is_object() || root.value("format", "") != "moeforge.router_stats")
    fail(label, ": not a moeforge stats file (\"format\" is not \"moeforge.router_stats\")");
  if (!root.contains("layers") || !root["layers"].is_array()) fail(label, ": needs a \"layers\" array");
  UsageMatrix m;
  m.source = label;
  if (root.contains("data") && root["data"].is_object() && root["data"].value("tokens", Json()).is_number())
    m.source += " (" + std::to_string(root["data"]["tokens"].get<int64_t>()) + " tokens)";
  for (const auto& layer : root["layers"]) {
    if (!layer.is_object() || !layer.contains("layer") || !layer["layer"].is_number_integer())
      fail(label, ": every layers[] entry needs an integer \"layer\"");
    const std::string where = label + ": layers[" + std::to_string(layer["layer"].get<int64_t>()) + "]";
    std::vector<double> row;
    if (layer.contains("usage")) row = normalised(numbers(layer["usage"], where + ".usage"));
    else if (layer.contains("counts")) row = normalised(numbers(layer["counts"], where + ".counts"));
    else fail(where, " has neither \"usage\" nor \"counts\"");
    if (!m.share.empty() && row.size() != m.share.front().size())
      fail(where, " has ", row.size(), " experts, layers[] before it ", m.share.front().size());
    m.rows.push_back("layer " + std::to_string(layer["layer"].get<int64_t>()));
    m.share.push_back(std::move(row));
  }
  return m;
}

UsageMatrix usage_from_metrics(const TrainMetrics& metrics, bool last) {
  UsageMatrix m;
  const MetricsRecord* pick = nullptr;
  for (const auto& r : metrics.records) {
    if (r.load.empty()) continue;
    if (!pick || last) pick = &r;
    if (!last) break;
  }
  if (!pick) return m;
  char step[32];
  std::snprintf(step, sizeof step, "%g", pick->step);
  m.source = std::string("training metrics \"load\", step ") + step + (pick->phase.empty() ? "" : " (" + pick->phase + ")");
  for (size_t l = 0; l < pick->load.size(); ++l) {
    m.rows.push_back("MoE layer " + std::to_string(l));
    m.share.push_back(normalised(pick->load[l]));
  }
  return m;
}

}  // namespace moeforge::report
