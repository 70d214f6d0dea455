// metrics.jsonl parsing and joining (see train_metrics.h).
#include "report/train_metrics.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace moeforge::report {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

MetricsRecord parse_record(const Json& j, const std::string& where) {
  if (!j.is_object()) fail(where, ": expected a JSON object per line");
  if (!j.contains("step") || !j["step"].is_number()) fail(where, ": missing numeric \"step\"");
  MetricsRecord r;
  r.step = j["step"].get<double>();
  if (j.contains("phase")) {
    if (!j["phase"].is_string()) fail(where, ": \"phase\" must be a string");
    r.phase = j["phase"].get<std::string>();
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const Json& v = it.value();
    if (it.key() == "step") continue;
    if (v.is_number()) {
      r.scalars[it.key()] = v.get<double>();
    } else if (it.key() == "load") {
      if (!v.is_array()) fail(where, ": \"load\" must be an array (per layer) of arrays (per expert)");
      for (const auto& layer : v) {
        if (!layer.is_array()) fail(where, ": \"load\" must be an array (per layer) of arrays (per expert)");
        std::vector<double> row;
        for (const auto& x : layer) {  // null is how nlohmann writes NaN
          if (!x.is_number() && !x.is_null()) fail(where, ": \"load\" holds a non-number");
          row.push_back(x.is_number() ? x.get<double>() : std::nan(""));
        }
        r.load.push_back(std::move(row));
      }
    } else if (v.is_array() && !v.empty() && v[0].is_number()) {
      std::vector<double> row;
      for (const auto& x : v) row.push_back(x.is_number() ? x.get<double>() : std::nan(""));
      r.per_layer[it.key()] = std::move(row);
    }
  }
  return r;
}

}  // namespace

std::vector<MetricsRecord> read_metrics_file(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail(file.string(), ": cannot open");
  std::vector<MetricsRecord> records;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    Json j;
    try {
      j = Json::parse(line);
    } catch (const Json::parse_error& e) {
      fail(where, ": not valid JSON (column ", e.byte, ")");
    }
    records.push_back(parse_record(j, where));
  }
  return records;
}

TrainMetrics read_train_metrics(const std::vector<fs::path>& files, const fs::path& run_dir) {
  TrainMetrics out;
  out.files = files;
  double last_step = -std::numeric_limits<double>::infinity();
  for (const auto& file : files) {
    auto records = read_metrics_file(file);
    if (records.empty()) continue;
    const double shift = records.front().step <= last_step ? last_step : 0.0;
    std::string prefix;
    if (files.size() > 1) {
      const auto dir = file.parent_path().lexically_relative(run_dir).generic_string();
      prefix = (dir.empty() || dir == ".") ? "" : dir + "/";
    }
    for (auto& r : records) {
      r.step += shift;
      r.phase = prefix + r.phase;
      last_step = std::max(last_step, r.step);
      out.records.push_back(std::move(r));
    }
  }
  return out;
}

std::vector<PhaseSpan> phase_spans(const TrainMetrics& metrics) {
  std::vector<PhaseSpan> spans;
  for (size_t i = 0; i < metrics.records.size(); ++i) {
    const auto& r = metrics.records[i];
    if (spans.empty() || spans.back().name != r.phase) spans.push_back({r.phase, r.step, r.step, i, i});
    spans.back().last_step = r.step;
    spans.back().last = i;
  }
  return spans;
}

std::vector<std::pair<double, double>> series(const TrainMetrics& metrics, const std::string& key) {
  std::vector<std::pair<double, double>> points;
  for (const auto& r : metrics.records) {
    auto it = r.scalars.find(key);
    if (it != r.scalars.end()) points.emplace_back(r.step, it->second);
  }
  return points;
}

std::vector<std::string> scalar_keys(const TrainMetrics& metrics, bool (*pred)(const std::string&)) {
  std::set<std::string> keys;
  for (const auto& r : metrics.records)
    for (const auto& [key, value] : r.scalars)
      if (pred(key)) keys.insert(key);
  return {keys.begin(), keys.end()};
}

}  // namespace moeforge::report
