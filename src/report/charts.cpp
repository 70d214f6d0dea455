// Line charts and usage heat maps (see charts.h), drawn with SvgCanvas.
#include "report/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "report/svg_canvas.h"

namespace moeforge::report {
namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// ~5 round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

// Range of the finite values, widened when flat so the line sits mid-chart.
std::pair<double, double> range(const std::vector<double>& values) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo)) return {0, 1};
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    const double pad = std::abs(hi) > 0 ? std::abs(hi) * 0.1 : 1.0;
    return {lo - pad, hi + pad};
  }
  return {lo, hi};
}

}  // namespace

std::string line_chart(const std::string& title, const std::string& y_label, const std::vector<Series>& series,
                       const std::vector<PhaseSpan>& phases) {
  const double width = 900, height = 300, left = 72, right = 20, top = 58, bottom = 42;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  std::vector<double> xs, ys;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) xs.push_back(x), ys.push_back(y);
  if (!phases.empty()) xs.push_back(phases.front().first_step), xs.push_back(phases.back().last_step);  // one x axis for all charts
  const auto x_range = range(xs), y_range = range(ys);
  const double x0 = x_range.first, x1 = x_range.second, y_pad = (y_range.second - y_range.first) * 0.05;
  const double y0 = y_range.first - y_pad, y1 = y_range.second + y_pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * plot_h; };

  SvgCanvas c(width, height);
  c.text(left, 20, title, 14);
  // Phase spans: shaded alternately, boundary halfway between the last and first logged steps.
  for (size_t i = 0; i < phases.size(); ++i) {
    const double a = i == 0 ? x0 : (phases[i - 1].last_step + phases[i].first_step) / 2;
    const double b = i + 1 == phases.size() ? x1 : (phases[i].last_step + phases[i + 1].first_step) / 2;
    if (i % 2 == 1) c.rect(px(a), top, px(b) - px(a), plot_h, "#f1f3f6");
    if (i > 0) c.line(px(a), top, px(a), top + plot_h, "#888", 1, "5,4");
    if (phases.size() > 1 || !phases[i].name.empty()) c.text(px(a) + 4, top + 12, phases[i].name, 10, "start", 0, "#555");
  }
  for (double t : ticks(y0, y1)) {
    c.line(left, py(t), left + plot_w, py(t), "#e3e3e3");
    c.text(left - 6, py(t) + 4, fmt(t), 10, "end");
  }
  for (double t : ticks(x0, x1)) {
    c.line(px(t), top + plot_h, px(t), top + plot_h + 4, "#444");
    c.text(px(t), top + plot_h + 16, fmt(t), 10, "middle");
  }
  c.line(left, top + plot_h, left + plot_w, top + plot_h, "#444");
  c.line(left, top, left, top + plot_h, "#444");
  c.text(left + plot_w / 2, height - 6, "step", 11, "middle");
  c.text(16, top + plot_h / 2, y_label, 11, "middle", -90);
  double legend_x = left;
  for (const auto& s : series) {
    std::vector<std::pair<double, double>> run;  // one polyline per stretch of finite values
    for (const auto& [x, y] : s.points) {
      if (std::isfinite(y)) {
        run.emplace_back(px(x), py(y));
        continue;
      }
      c.polyline(run, s.color, s.width, s.opacity);
      run.clear();
    }
    if (run.size() == 1) c.rect(run[0].first - 1.5, run[0].second - 1.5, 3, 3, s.color);
    c.polyline(run, s.color, s.width, s.opacity);
    if (s.name.empty()) continue;
    c.line(legend_x, 38, legend_x + 18, 38, s.color, 2.5);
    c.text(legend_x + 22, 42, s.name, 11);
    legend_x += 34 + 6.5 * static_cast<double>(s.name.size());
  }
  return c.element();
}

double usage_peak(const UsageMatrix& usage) {
  double peak = 0;
  for (const auto& row : usage.share)
    for (double v : row)
      if (std::isfinite(v)) peak = std::max(peak, v * static_cast<double>(row.size()));
  return peak;
}

std::string usage_heatmap(const std::string& title, const UsageMatrix& usage, double vmax) {
  const size_t R = usage.share.size();
  size_t C = 0;
  for (const auto& row : usage.share) C = std::max(C, row.size());
  const double cell = std::clamp(720.0 / std::max<size_t>(C, 1), 3.0, 44.0);
  const double row_h = std::clamp(360.0 / std::max<size_t>(R, 1), 3.0, 30.0);
  const double left = 90, top = 44, bh = std::max(R * row_h, 60.0);  // bh: colour bar height
  const double width = std::max(left + C * cell + 90, 420.0), height = top + bh + 44;
  SvgCanvas c(width, height);
  c.text(8, 18, title, 13);
  vmax = vmax > 0 ? vmax : 1;
  const size_t col_step = std::max<size_t>(1, static_cast<size_t>(std::ceil(20.0 / cell)));
  const size_t row_step = std::max<size_t>(1, static_cast<size_t>(std::ceil(12.0 / row_h)));
  for (size_t r = 0; r < R; ++r) {
    const auto& row = usage.share[r];
    const double E = static_cast<double>(row.size());
    for (size_t e = 0; e < C; ++e) {
      const double x = left + e * cell, y = top + r * row_h;
      if (e >= row.size()) {
        c.rect(x, y, cell, row_h, "#dddddd");
        continue;
      }
      c.rect(x, y, cell, row_h, sequential_color(row[e] * E / vmax),
             usage.rows[r] + ", expert " + std::to_string(e) + ": share " + fmt(row[e]) + " (" + fmt(row[e] * E) + " x uniform)");
    }
    if (r % row_step == 0) c.text(left - 6, top + r * row_h + row_h / 2 + 4, usage.rows[r], 10, "end");
  }
  for (size_t e = 0; e < C; e += col_step) c.text(left + e * cell + cell / 2, top + R * row_h + 14, std::to_string(e), 10, "middle");
  c.text(left + C * cell / 2, height - 8, "expert", 11, "middle");
  // Colour bar: 0 .. vmax in units of the uniform share.
  const double bx = left + C * cell + 16;
  const int steps = 40;
  for (int i = 0; i < steps; ++i) c.rect(bx, top + bh - (i + 1) * bh / steps, 14, bh / steps + 0.5, sequential_color((i + 0.5) / steps));
  c.text(bx + 18, top + 10, fmt(vmax), 10);
  c.text(bx + 18, top + bh, "0", 10);
  c.text(bx + 46, top + bh / 2, "x uniform", 10, "middle", 90);
  return c.element();
}

}  // namespace moeforge::report
