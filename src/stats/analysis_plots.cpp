// The analysis figures (see analysis_plots.h), drawn with SvgCanvas.
#include "stats/analysis_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "common/error.h"
#include "io/atomic_file.h"
#include "report/svg_canvas.h"

namespace moeforge::stats {
namespace {

using report::category_color;
using report::sequential_color;
using report::SvgCanvas;

namespace fs = std::filesystem;
using Matrix = std::vector<std::vector<double>>;

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// Experts along x; label every `step`-th so labels do not collide.
int64_t label_step(int64_t n, double cell) { return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(18.0 / cell))); }

void color_bar(SvgCanvas& c, double x, double y, double h, double lo, double hi, const std::string& label) {
  const int steps = 40;
  for (int i = 0; i < steps; ++i)
    c.rect(x, y + h - (i + 1) * h / steps, 14, h / steps + 0.5, sequential_color((i + 0.5) / steps));
  c.text(x + 18, y + 10, fmt(hi), 10);
  c.text(x + 18, y + h, fmt(lo), 10);
  c.text(x + 44, y + h / 2, label, 10, "middle", 90);
}

// rows x cols heat map of values / vmax. `outline[r]` holds the columns to outline in row r.
std::string heatmap(const std::string& title, const std::string& row_title, const std::vector<std::string>& rows,
                    const std::string& col_title, const Matrix& values, double vmax, const std::string& bar_label,
                    const std::vector<std::set<int64_t>>& outline = {}, bool grey_diagonal = false) {
  const auto R = static_cast<int64_t>(rows.size()), C = static_cast<int64_t>(values.empty() ? 0 : values[0].size());
  const double cell = std::clamp(720.0 / std::max<int64_t>(C, 1), 4.0, 28.0), row_h = std::clamp(480.0 / std::max<int64_t>(R, 1), 4.0, 28.0);
  const double left = 70, top = 50, height = top + R * row_h + 60;
  const double width = std::max(left + C * cell + 90, 7.5 * static_cast<double>(title.size()) + 40);
  SvgCanvas c(width, height);
  c.text(width / 2, 24, title, 15, "middle");
  for (int64_t r = 0; r < R; ++r)
    for (int64_t e = 0; e < C; ++e) {
      const bool diag = grey_diagonal && r == e;
      const double v = values[r][e];
      c.rect(left + e * cell, top + r * row_h, cell, row_h, diag ? "#bbbbbb" : sequential_color(vmax > 0 ? v / vmax : 0),
             rows[r] + ", expert " + std::to_string(e) + ": " + fmt(v));
    }
  for (int64_t r = 0; r < static_cast<int64_t>(outline.size()) && r < R; ++r)
    for (int64_t e : outline[r]) {
      const double x = left + e * cell, y = top + r * row_h;
      c.line(x + 1, y + 1, x + cell - 1, y + 1, "#ff3030", 2);
      c.line(x + 1, y + row_h - 1, x + cell - 1, y + row_h - 1, "#ff3030", 2);
      c.line(x + 1, y + 1, x + 1, y + row_h - 1, "#ff3030", 2);
      c.line(x + cell - 1, y + 1, x + cell - 1, y + row_h - 1, "#ff3030", 2);
    }
  const int64_t rstep = label_step(R, row_h), cstep = label_step(C, cell);
  for (int64_t r = 0; r < R; r += rstep) c.text(left - 6, top + r * row_h + row_h / 2 + 4, rows[r], 10, "end");
  for (int64_t e = 0; e < C; e += cstep) c.text(left + e * cell + cell / 2, top + R * row_h + 14, std::to_string(e), 10, "middle");
  c.text(left + C * cell / 2, top + R * row_h + 34, col_title, 12, "middle");
  c.text(16, top + R * row_h / 2, row_title, 12, "middle", -90);
  color_bar(c, left + C * cell + 16, top, std::min(200.0, R * row_h), 0, vmax, bar_label);
  return c.str();
}

std::string domain_bars(const Analysis& a, size_t li) {
  const RouterStats& s = a.stats;
  const LayerStats& L = s.layers[li];
  const int64_t E = s.num_experts, D = static_cast<int64_t>(s.domains.size());
  Matrix share(static_cast<size_t>(D), std::vector<double>(static_cast<size_t>(E), 0.0));
  double vmax = 1.0 / static_cast<double>(E);
  for (int64_t d = 0; d < D; ++d) {
    double total = 0;
    for (double v : L.domain_counts[d]) total += v;
    for (int64_t e = 0; e < E; ++e) share[d][e] = total > 0 ? L.domain_counts[d][e] / total : 0.0, vmax = std::max(vmax, share[d][e]);
  }
  const double group = std::clamp(760.0 / E, 8.0, 60.0), bar = std::max(1.0, (group - 2) / std::max<int64_t>(D, 1));
  const double left = 60, top = 50, plot_h = 260, width = left + E * group + 150, height = top + plot_h + 50;
  SvgCanvas c(width, height);
  c.text(width / 2, 24, "Expert usage by domain, layer " + std::to_string(L.layer), 15, "middle");
  for (int i = 0; i <= 4; ++i) {
    const double y = top + plot_h - i * plot_h / 4;
    c.line(left, y, left + E * group, y, "#dddddd");
    c.text(left - 6, y + 4, fmt(vmax * i / 4), 10, "end");
  }
  const double uniform_y = top + plot_h - plot_h * (1.0 / E) / vmax;
  for (int64_t e = 0; e < E; ++e)
    for (int64_t d = 0; d < D; ++d) {
      const double h = plot_h * share[d][e] / vmax;
      c.rect(left + e * group + 1 + d * bar, top + plot_h - h, bar, h, category_color(static_cast<size_t>(d)),
             s.domains[d] + ", expert " + std::to_string(e) + ": " + fmt(share[d][e]));
    }
  c.line(left, uniform_y, left + E * group, uniform_y, "#555555", 1);
  c.text(left + E * group + 4, uniform_y + 4, "1/E", 10);
  const int64_t step = label_step(E, group);
  for (int64_t e = 0; e < E; e += step) c.text(left + e * group + group / 2, top + plot_h + 14, std::to_string(e), 10, "middle");
  c.text(left + E * group / 2, top + plot_h + 36, "expert", 12, "middle");
  c.text(16, top + plot_h / 2, "share of the domain's top-k picks", 11, "middle", -90);
  for (int64_t d = 0; d < D; ++d) {
    c.rect(left + E * group + 40, top + 10 + d * 18, 12, 12, category_color(static_cast<size_t>(d)));
    c.text(left + E * group + 56, top + 20 + d * 18, s.domains[d] + " (" + std::to_string(s.domain_tokens[d]) + " tok)", 10);
  }
  return c.str();
}

}  // namespace

std::vector<fs::path> write_plots(const Analysis& a, const fs::path& dir, int64_t plot_layer) {
  const RouterStats& s = a.stats;
  const int64_t E = s.num_experts;
  size_t li = 0;
  if (plot_layer >= 0) {
    li = s.layers.size();
    for (size_t i = 0; i < s.layers.size(); ++i)
      if (s.layers[i].layer == plot_layer) li = i;
    if (li == s.layers.size()) fail("--plot-layer ", plot_layer, " is not a MoE layer of the statistics");
  } else {
    for (size_t i = 1; i < a.layers.size(); ++i)
      if (a.layers[i].balance < a.layers[li].balance) li = i;
  }
  const std::string L = std::to_string(s.layers[li].layer);
  fs::create_directories(dir);
  std::vector<fs::path> written;
  auto save = [&](const std::string& name, const std::string& svg) {
    write_file_atomic(dir / name, svg);
    written.push_back(dir / name);
  };
  std::vector<std::string> rows;
  Matrix usage;
  double vmax = 0;
  for (const auto& l : a.layers) {
    rows.push_back("layer " + std::to_string(l.layer));
    std::vector<double> r(l.usage.size());
    for (size_t e = 0; e < r.size(); ++e) r[e] = l.usage[e] * static_cast<double>(E), vmax = std::max(vmax, r[e]);
    usage.push_back(r);
  }
  save("usage_heatmap.svg", heatmap("Expert usage (x uniform), " + std::to_string(s.tokens) + " tokens", "MoE layer", rows,
                                    "expert", usage, vmax, "usage x E"));

  const LayerStats& ls = s.layers[li];
  Matrix co(static_cast<size_t>(E), std::vector<double>(static_cast<size_t>(E)));
  double co_max = 0;
  std::vector<std::string> erows;
  for (int64_t i = 0; i < E; ++i) {
    erows.push_back(std::to_string(i));
    for (int64_t j = 0; j < E; ++j) {
      co[i][j] = ls.coactivation[i * E + j] / static_cast<double>(s.tokens);
      if (i != j) co_max = std::max(co_max, co[i][j]);
    }
  }
  save("coactivation_layer" + L + ".svg", heatmap("Co-activation, layer " + L + " (share of tokens picking both)", "expert",
                                                  erows, "expert", co, co_max, "share of tokens", {}, true));
  if (!s.domains.empty()) save("domain_usage_layer" + L + ".svg", domain_bars(a, li));

  if (a.pca_source != "none") {
    Matrix imp;
    std::vector<std::set<int64_t>> tops;
    for (const auto& p : a.pca) {
      const double m = p.importance.empty() ? 0 : *std::max_element(p.importance.begin(), p.importance.end());
      std::vector<double> r(p.importance.size());
      for (size_t e = 0; e < r.size(); ++e) r[e] = m > 0 ? p.importance[e] / m : 0;
      imp.push_back(r);
      auto order = rank_desc(p.importance);
      tops.emplace_back(order.begin(), order.begin() + std::min<int64_t>(a.pca_top_k, static_cast<int64_t>(order.size())));
    }
    save("pca_importance.svg", heatmap("PCA importance (per-layer max = 1; top-" + std::to_string(a.pca_top_k) + " outlined)",
                                       "MoE layer", rows, "expert", imp, 1.0, "importance", tops));
  }
  return written;
}

}  // namespace moeforge::stats
