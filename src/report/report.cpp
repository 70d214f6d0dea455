// Report assembly: find inputs, parse them, render sections into one page (see report.h).
#include "report/report.h"

#include <ctime>
#include <map>
#include <optional>

#include "common/strings.h"
#include "io/atomic_file.h"
#include "report/eval_summary.h"
#include "report/run_files.h"
#include "report/sections.h"
#include "report/stats_usage.h"
#include "report/train_metrics.h"

namespace moeforge::report {

namespace fs = std::filesystem;

namespace {

// Self-contained by construction: the browser refuses any script or fetch the page might acquire.
constexpr const char* kPolicy =
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n";

constexpr const char* kStyle =
    "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;color:#222;margin:24px auto;max-width:960px;padding:0 12px}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}h3{font-size:14px}"
    ".meta{color:#555;font-size:13px}.na{color:#888;font-style:italic}.warn{color:#a40;font-size:13px}"
    "table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 10px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}"
    "figure{margin:14px 0}figcaption{font-size:12px;color:#555}svg{max-width:100%;height:auto}code{font-size:12px}";

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string display_name(const fs::path& run_dir) {
  const fs::path p = fs::absolute(run_dir).lexically_normal();
  const std::string name = p.filename().string();
  return name.empty() ? p.parent_path().filename().string() : name;
}

// stats.json for before/after: directories named *before* / *after* first (the pipeline writes
// stats_before/ and stats_after/), then unlabelled files fill the empty slots in path order.
struct StatsChoice {
  std::optional<fs::path> before, after;
};

StatsChoice choose_stats(const std::vector<fs::path>& files, const fs::path& run_dir) {
  StatsChoice c;
  std::vector<fs::path> unlabelled;
  for (const auto& f : files) {
    const std::string rel = f.lexically_relative(run_dir).generic_string();
    if (rel.find("before") != std::string::npos && !c.before) c.before = f;
    else if (rel.find("after") != std::string::npos && !c.after) c.after = f;
    else unlabelled.push_back(f);
  }
  for (const auto& f : unlabelled) {
    if (!c.before) c.before = f;
    else if (!c.after) c.after = f;
  }
  return c;
}

std::string inputs_list(const RunFiles& files, const fs::path& run_dir) {
  auto list = [&](const std::string& what, const std::vector<fs::path>& paths) {
    std::string items;
    for (const auto& p : paths) items += (items.empty() ? "" : ", ") + std::string("<code>") + html(p.lexically_relative(run_dir).generic_string()) + "</code>";
    return "<li>" + what + ": " + (items.empty() ? "<span class=\"na\">none found</span>" : items) + "</li>\n";
  };
  return "<h2 id=\"inputs\">Inputs</h2>\n<ul>\n" + list("training metrics", files.metrics) + list("router statistics", files.stats) +
         list("evaluation", files.evals) + "</ul>\n";
}

}  // namespace

std::string render_report(const ReportOptions& o) {
  const RunFiles files = find_run_files(o.run_dir);
  const TrainMetrics metrics = read_train_metrics(files.metrics, o.run_dir);
  // Every stats file must be well-formed, shown or not; before/after fall back to the training load.
  // Errors name files as found; the page names them relative to the run directory.
  auto shorten = [&](std::string& text, const fs::path& file) {
    if (starts_with(text, file.string())) text = file.lexically_relative(o.run_dir).generic_string() + text.substr(file.string().size());
  };
  std::map<fs::path, UsageMatrix> stats;
  for (const auto& f : files.stats) {
    stats[f] = read_stats_usage(f);
    shorten(stats[f].source, f);
  }
  const StatsChoice chosen = choose_stats(files.stats, o.run_dir);
  const UsageMatrix before = chosen.before ? stats[*chosen.before] : usage_from_metrics(metrics, false);
  const UsageMatrix after = chosen.after ? stats[*chosen.after] : usage_from_metrics(metrics, true);
  std::vector<EvalTable> evals;
  for (const auto& f : files.evals)
    for (auto& t : read_eval_tables(f)) {
      shorten(t.name, f);
      evals.push_back(std::move(t));
    }

  const std::string name = display_name(o.run_dir);
  std::string page = std::string("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n") + kPolicy +
                     "<title>moeforge report: " + html(name) +
                     "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  page += "<h1>moeforge report: " + html(name) + "</h1>\n<p class=\"meta\">Run directory <code>" +
          html(fs::absolute(o.run_dir).lexically_normal().string()) + "</code><br>Generated by " + html(o.generator) + " at " +
          html(o.generated_at.empty() ? now_utc() : o.generated_at) + "</p>\n";
  page += inputs_list(files, o.run_dir);
  page += training_section(metrics);
  page += router_section(metrics);
  page += usage_section(before, after);
  page += eval_section(evals);
  page += "</body>\n</html>\n";
  return page;
}

std::string write_report(const ReportOptions& o) {
  const std::string page = render_report(o);
  write_file_atomic(o.out, page);
  return o.out.string() + ": " + std::to_string(page.size() / 1024) + " KiB";
}

}  // namespace moeforge::report
