// HTML sections of the report (see sections.h).
#include "report/sections.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>

#include "report/charts.h"
#include "report/svg_canvas.h"

namespace moeforge::report {
namespace {

std::string fmt(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string cell(const std::optional<double>& v) { return v ? fmt(*v) : "&ndash;"; }

std::string figure(const std::string& id, const std::string& svg, const std::string& caption) {
  return "<figure class=\"chart\" id=\"" + id + "\">\n" + svg + "<figcaption>" + html(caption) + "</figcaption></figure>\n";
}

// A chart of the scalar `keys` (each its own line), or a note when no record has any of them.
std::string scalar_chart(const TrainMetrics& m, const std::vector<PhaseSpan>& phases, const std::string& id,
                         const std::string& title, const std::string& y_label, const std::vector<std::string>& keys) {
  std::vector<Series> lines;
  for (const auto& key : keys) {
    auto points = series(m, key);
    if (!points.empty()) lines.push_back({key, std::move(points), category_color(lines.size())});
  }
  if (lines.empty()) return not_available(id, title, "no record logs " + [&] {
    std::string names;
    for (const auto& k : keys) names += (names.empty() ? "\"" : ", \"") + k + "\"";
    return names;
  }());
  return figure(id, line_chart(title, y_label, lines, phases), title + " per logged step; shaded bands and dashed lines mark phases.");
}

// Per-layer lines of an array field (thin, translucent) under its mean line.
std::vector<Series> per_layer_series(const TrainMetrics& m, const std::string& key) {
  std::vector<Series> lines;
  for (const auto& r : m.records) {
    auto it = r.per_layer.find(key);
    if (it == r.per_layer.end()) continue;
    if (lines.size() < it->second.size()) lines.resize(it->second.size());
    for (size_t l = 0; l < it->second.size(); ++l) lines[l].points.emplace_back(r.step, it->second[l]);
  }
  for (auto& s : lines) s.color = "#999999", s.width = 1, s.opacity = 0.6;
  return lines;
}

bool is_kl(const std::string& key) { return key.find("kl") != std::string::npos; }

}  // namespace

std::string html(const std::string& text) { return xml_escape(text); }

std::string not_available(const std::string& id, const std::string& what, const std::string& why) {
  return "<p class=\"na\" id=\"" + id + "\">" + html(what) + ": not available (" + html(why) + ")</p>\n";
}

std::string training_section(const TrainMetrics& m) {
  std::string out = "<h2 id=\"training\">Training</h2>\n";
  if (m.records.empty())
    return out + not_available("training-na", "Training curves", m.files.empty() ? "no metrics.jsonl found" : "metrics.jsonl is empty");
  const auto phases = phase_spans(m);
  out += "<table class=\"phases\"><tr><th>phase</th><th>steps</th><th>records</th><th>first loss</th><th>last loss</th><th>last lr</th></tr>\n";
  for (const auto& p : phases) {
    auto value = [&](size_t i, const char* key) {
      auto it = m.records[i].scalars.find(key);
      return it == m.records[i].scalars.end() ? std::string("&ndash;") : fmt(it->second);
    };
    out += "<tr><td>" + html(p.name.empty() ? "(unnamed)" : p.name) + "</td><td>" + fmt(p.first_step) + " &ndash; " + fmt(p.last_step) +
           "</td><td>" + std::to_string(p.last - p.first + 1) + "</td><td>" + value(p.first, "loss") + "</td><td>" +
           value(p.last, "loss") + "</td><td>" + value(p.last, "lr") + "</td></tr>\n";
  }
  out += "</table>\n";
  out += scalar_chart(m, phases, "chart-loss", "Loss", "nats/token", {"loss", "ce"});
  out += scalar_chart(m, phases, "chart-lr", "Learning rate", "lr", {"lr"});
  out += scalar_chart(m, phases, "chart-aux", "Auxiliary losses", "loss", {"lb", "aux", "z"});
  if (!series(m, "kd").empty())  // distilling phases (docs/TRAINING.md, Distillation)
    out += scalar_chart(m, phases, "chart-distill", "Distillation", "nats (agreement: share)", {"kd", "kl", "router_kd", "agreement"});
  out += scalar_chart(m, phases, "chart-grad-norm", "Gradient norm", "||g||", {"grad_norm"});
  out += scalar_chart(m, phases, "chart-throughput", "Throughput", "tokens/s", {"tokens_per_s"});
  return out;
}

std::string router_section(const TrainMetrics& m) {
  std::string out = "<h2 id=\"router\">Router</h2>\n";
  if (m.records.empty()) return out + not_available("router-na", "Router curves", "no training metrics");
  const auto phases = phase_spans(m);
  const auto kl_keys = scalar_keys(m, is_kl);
  out += kl_keys.empty() ? not_available("chart-kl", "KL divergence", "no record logs a key containing \"kl\"")
                         : scalar_chart(m, phases, "chart-kl", "KL divergence", "nats", kl_keys);
  auto drift = series(m, "router_drift");
  if (drift.empty()) {
    out += not_available("chart-drift", "Router drift", "no record logs \"router_drift\"");
  } else {
    auto lines = per_layer_series(m, "router_drift_per_layer");
    lines.push_back({"router_drift (mean over MoE layers)", std::move(drift), category_color(0), 2.2});
    if (lines.size() > 1) lines.front().name = "per layer";
    out += figure("chart-drift", line_chart("Router drift ||W - W0|| / max(||W0||, ||W||)", "relative change", lines, phases),
                  "Router drift per logged step: mean over MoE layers (bold) and each layer (grey).");
  }
  // The absolute change (runs since stop 10): for a router that started at zero (upcycling) the
  // relative drift is a flat 1, this curve shows it learning.
  auto drift_abs = series(m, "router_drift_abs");
  if (!drift_abs.empty()) {
    auto lines = per_layer_series(m, "router_drift_abs_per_layer");
    lines.push_back({"||W - W0|| (mean over MoE layers)", std::move(drift_abs), category_color(0), 2.2});
    if (lines.size() > 1) lines.front().name = "per layer";
    out += figure("chart-drift-abs", line_chart("Router change ||W - W0||", "Frobenius norm", lines, phases),
                  "Absolute router change per logged step: mean over MoE layers (bold) and each layer (grey).");
  }
  out += scalar_chart(m, phases, "chart-balance", "Expert balance", "H(load) / log E", {"balance"});
  return out;
}

std::string usage_section(const UsageMatrix& before, const UsageMatrix& after) {
  std::string out = "<h2 id=\"usage\">Expert usage</h2>\n";
  const double vmax = std::max(usage_peak(before), usage_peak(after));
  auto one = [&](const UsageMatrix& u, const std::string& id, const std::string& when) {
    if (u.share.empty()) return not_available(id, "Expert usage " + when, "no stats.json and no \"load\" in the training metrics");
    return figure(id, usage_heatmap("Expert usage " + when + " (layers x experts)", u, vmax),
                  "Share of top-k picks x number of experts (1 = uniform), from " + u.source + ".");
  };
  // Experts the router all but stopped using are easy to miss in a heat map: name them.
  auto low = [](const UsageMatrix& u, const std::string& id, const std::string& when) -> std::string {
    if (u.share.empty()) return "";
    const auto flagged = low_usage_experts(u, kLowUsageFraction);
    std::string text;
    for (const auto& f : flagged) {
      const double uniform = 1.0 / static_cast<double>(u.share[f.row].size());
      char buf[96];
      std::snprintf(buf, sizeof buf, " (share %.3g = %.2g x uniform)", f.share, f.share / uniform);
      text += (text.empty() ? "" : "; ") + u.rows[f.row] + ", expert " + std::to_string(f.expert) + buf;
    }
    if (flagged.empty()) return "<p class=\"meta\" id=\"" + id + "\">No expert is below half the uniform share " + html(when) + ".</p>\n";
    return "<p class=\"warn\" id=\"" + id + "\">" + std::to_string(flagged.size()) + " expert(s) below half the uniform share " +
           html(when) + ": " + html(text) + ".</p>\n";
  };
  return out + one(before, "heatmap-before", "before") + low(before, "low-usage-before", "before") +
         one(after, "heatmap-after", "after") + low(after, "low-usage-after", "after");
}

std::string eval_section(const std::vector<EvalTable>& tables) {
  std::string out = "<h2 id=\"eval\">Evaluation</h2>\n";
  if (tables.empty()) return out + not_available("eval-na", "Evaluation", "no eval*.json found");
  for (const auto& t : tables) {
    out += "<h3>" + html(t.name) + "</h3>\n";
    if (!t.model.empty() || !t.baseline_model.empty())
      out += "<p>model: <code>" + html(t.model.empty() ? "?" : t.model) + "</code>" +
             (t.baseline_model.empty() ? "" : ", baseline: <code>" + html(t.baseline_model) + "</code>") + "</p>\n";
    if (!t.note.empty()) out += "<p class=\"meta\">" + html(t.note) + "</p>\n";
    out += "<table class=\"eval\"><tr><th>metric</th><th>model</th><th>baseline</th><th>model &minus; baseline</th></tr>\n";
    for (const auto& r : t.rows) {
      std::optional<double> delta;
      if (r.model && r.baseline) delta = *r.model - *r.baseline;
      out += "<tr><td>" + html(r.metric) + "</td><td>" + cell(r.model) + "</td><td>" + cell(r.baseline) + "</td><td>" + cell(delta) +
             "</td></tr>\n";
    }
    out += "</table>\n";
  }
  return out;
}

}  // namespace moeforge::report
