// Tests of `moeforge report` on synthetic run directories: every chart and table present and the
// page well-formed, inputs found where the pipeline writes them, missing parts noted as "not
// available", malformed inputs rejected with the file (and line) named, text escaped.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <vector>

#include "common/remove_tree.h"
#include "report/report.h"
#include "report/run_files.h"
#include "report/train_metrics.h"
#include "test_util.h"

namespace moeforge::report {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using test::TempDir;

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  test::write_text_file(path, text);
}

// metrics.jsonl as src/train/trainer.cpp logs it: 2 MoE layers x 4 experts; phase 2 adds "kl".
std::string metrics_jsonl(const std::vector<std::string>& phases, int steps_per_phase, bool kl_in_last = true) {
  std::string out;
  int step = 0;
  for (size_t p = 0; p < phases.size(); ++p) {
    for (int s = 1; s <= steps_per_phase; ++s) {
      ++step;
      const double t = step;
      const double skew = 0.1 / t;
      Json rec = {{"step", step}, {"phase", phases[p]}, {"phase_step", s}, {"loss", 4.0 / std::sqrt(t)}, {"ce", 3.9 / std::sqrt(t)},
                  {"lb", 0.01}, {"z", 0.001}, {"lr", 1e-4 * s / steps_per_phase}, {"grad_norm", 1.0 + 0.5 * std::sin(t)},
                  {"tokens", 2048}, {"tokens_per_s", 1500.0 + t}, {"balance", 0.9 + 0.001 * t}, {"router_drift", 0.002 * t},
                  {"balance_per_layer", {0.9, 0.91}}, {"router_drift_per_layer", {0.001 * t, 0.003 * t}},
                  {"lb_per_layer", {0.01, 0.01}},
                  {"load", {{0.25 + skew, 0.25 - skew, 0.25, 0.25}, {0.4, 0.2, 0.2, 0.2}}}};
      if (kl_in_last && p + 1 == phases.size()) rec["kl"] = 0.05 / t;
      out += rec.dump() + "\n";
    }
  }
  return out;
}

std::string stats_json(const std::vector<std::vector<double>>& counts) {
  Json layers = Json::array();
  for (size_t l = 0; l < counts.size(); ++l) {
    double total = 0;
    for (double c : counts[l]) total += c;
    Json usage = Json::array();
    for (double c : counts[l]) usage.push_back(c / total);
    layers.push_back({{"layer", l}, {"counts", counts[l]}, {"usage", usage}});
  }
  Json root = {{"format", "moeforge.router_stats"}, {"version", 1},
               {"model", {{"path", "m"}, {"model_type", "mixtral"}, {"num_layers", 2}, {"num_experts", 4}, {"hidden_size", 64}, {"top_k", 2}}},
               {"data", {{"tokens", 3000}}}, {"layers", layers}};
  return root.dump(1);
}

// What `moeforge eval --json --baseline` prints.
std::string eval_json() {
  Json j = {{"loss", 2.345678}, {"perplexity", 10.4398}, {"tokens", 4096}, {"balance_score", 0.8765},
            {"balanced_perplexity", 11.7654}, {"model", "out/trained"}, {"blocks", 8},
            {"expert_usage", Json::array()},
            {"domains", {{"news", {{"loss", 2.5}, {"perplexity", 12.18}, {"tokens", 2048}}}}},
            {"baseline", {{"loss", 2.1}, {"perplexity", 8.16617}, {"mean_kl", 0.0123}, {"model", "models/base"}}}};
  return j.dump(2);
}

void make_full_run(const fs::path& run) {
  write(run / "train" / "metrics.jsonl", metrics_jsonl({"experts_only", "router_finetune"}, 20));
  write(run / "stats_before" / "stats.json", stats_json({{900, 300, 300, 300}, {450, 450, 600, 300}}));
  write(run / "stats_after" / "stats.json", stats_json({{460, 440, 560, 340}, {500, 500, 520, 280}}));
  write(run / "eval.json", eval_json());
}

std::string render(const fs::path& run) {
  ReportOptions o;
  o.run_dir = run;
  o.out = run / "report.html";
  o.generated_at = "2024-01-02 03:04:05 UTC";
  return render_report(o);
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// The element with `id` holds an inline <svg> (a chart), not a "not available" note.
bool has_chart(const std::string& html, const std::string& id) {
  const size_t at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return false;
  const size_t svg = html.find("<svg", at), end = html.find("</figure>", at);
  return svg != std::string::npos && end != std::string::npos && svg < end;
}

// Every non-void element is closed in order; returns "" or what went wrong.
std::string tag_balance_error(const std::string& html) {
  static const std::regex tag(R"(<(/?)([a-zA-Z][a-zA-Z0-9]*)([^<>]*?)(/?)>)");
  static const std::vector<std::string> void_elements = {"meta", "br", "hr", "img", "input", "link"};
  std::vector<std::string> open;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), tag); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[2], closing = (*it)[1], self = (*it)[4];
    if (!self.empty() || std::find(void_elements.begin(), void_elements.end(), name) != void_elements.end()) continue;
    if (closing.empty()) {
      open.push_back(name);
    } else if (open.empty() || open.back() != name) {
      return "</" + name + "> closes <" + (open.empty() ? std::string("nothing") : open.back()) + ">";
    } else {
      open.pop_back();
    }
  }
  return open.empty() ? "" : "<" + open.back() + "> never closed";
}

TEST(Report, FullRunHasEveryChartTableAndPhase) {
  TempDir dir;
  const fs::path run = dir / "my_run";
  make_full_run(run);
  const std::string html = render(run);
  EXPECT_EQ(tag_balance_error(html), "");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<title>moeforge report: my_run</title>"), std::string::npos);
  EXPECT_NE(html.find("2024-01-02 03:04:05 UTC"), std::string::npos);
  for (const char* id : {"chart-loss", "chart-lr", "chart-aux", "chart-grad-norm", "chart-throughput", "chart-kl", "chart-drift",
                         "chart-balance", "heatmap-before", "heatmap-after"})
    EXPECT_TRUE(has_chart(html, id)) << id;
  EXPECT_EQ(count(html, "<svg"), 10u);
  EXPECT_EQ(count(html, "</svg>"), 10u);
  EXPECT_EQ(html.find("not available"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no external resources
  // Phases: in the phase table and as chart labels.
  EXPECT_GE(count(html, ">experts_only<"), 2u);
  EXPECT_GE(count(html, ">router_finetune<"), 2u);
  EXPECT_NE(html.find("<td>1 &ndash; 20</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>21 &ndash; 40</td>"), std::string::npos);
  // Eval table: model, baseline and the difference.
  EXPECT_NE(html.find("<td>loss (nats/token)</td><td>2.34568</td><td>2.1</td><td>0.245678</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>perplexity</td><td>10.4398</td><td>8.16617</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>mean KL(baseline || model)</td><td>0.0123</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>balance score</td><td>0.8765</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>loss [news]</td><td>2.5</td>"), std::string::npos);
  EXPECT_NE(html.find("models/base"), std::string::npos);
  // Heat maps come from the stats dirs (not the training load); layer 0 expert 0 before: 900/1800 x 4 = 2 x uniform.
  EXPECT_NE(html.find("stats_before/stats.json (3000 tokens)"), std::string::npos);
  EXPECT_NE(html.find("stats_after/stats.json (3000 tokens)"), std::string::npos);
  EXPECT_NE(html.find("layer 0, expert 0: share 0.5 (2 x uniform)"), std::string::npos);
  // Low-usage experts are named: none before (lowest 300/1800 = 0.67 x uniform)...
  EXPECT_NE(html.find("id=\"low-usage-before\">No expert is below half the uniform share before."), std::string::npos);
  EXPECT_NE(html.find("id=\"low-usage-after\">No expert is below half the uniform share after."), std::string::npos);
}

TEST(Report, ExpertsBelowHalfTheUniformShareAreNamed) {
  TempDir dir;
  const fs::path run = dir / "run";
  make_full_run(run);
  // Layer 1 after training: expert 3 has 100 / 2000 picks = 0.05 = 0.2 x uniform; expert 2 has
  // 250 / 2000 = 0.125, exactly half of uniform, which is not below it.
  write(run / "stats_after" / "stats.json", stats_json({{460, 440, 560, 340}, {1000, 650, 250, 100}}));
  const std::string html = render(run);
  EXPECT_EQ(tag_balance_error(html), "");
  EXPECT_NE(html.find("id=\"low-usage-after\">1 expert(s) below half the uniform share after: layer 1, expert 3 (share 0.05 = 0.2 x uniform)."),
            std::string::npos)
      << html.substr(html.find("low-usage-after") - 20, 300);
  EXPECT_NE(html.find("id=\"low-usage-before\">No expert"), std::string::npos);
}

TEST(Report, WritesAtomicallyAndLeavesNoTemporaries) {
  TempDir dir;
  make_full_run(dir.path());
  ReportOptions o;
  o.run_dir = dir.path();
  o.out = dir / "out" / "report.html";
  write_report(o);
  ASSERT_TRUE(fs::exists(o.out));
  EXPECT_NE(test::read_text_file(o.out).find("</html>"), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir / "out")) EXPECT_EQ(e.path().filename(), "report.html");
  write_report(o);  // overwriting an existing report (and not reading it back as an input)
  EXPECT_TRUE(fs::exists(o.out));
}

TEST(Report, MissingPartsSayNotAvailable) {
  TempDir dir;
  const std::string html = render(dir.path());
  EXPECT_EQ(tag_balance_error(html), "");
  EXPECT_EQ(count(html, "<svg"), 0u);
  for (const char* id : {"training-na", "router-na", "heatmap-before", "heatmap-after", "eval-na"})
    EXPECT_NE(html.find("id=\"" + std::string(id) + "\">"), std::string::npos) << id;
  EXPECT_GE(count(html, "not available"), 5u);
}

TEST(Report, MetricsWithoutStatsOrEvalUseTrainingLoad) {
  TempDir dir;
  write(dir / "metrics.jsonl", metrics_jsonl({"only"}, 5, /*kl_in_last=*/false));
  const std::string html = render(dir.path());
  EXPECT_TRUE(has_chart(html, "chart-loss"));
  EXPECT_TRUE(has_chart(html, "heatmap-before"));
  EXPECT_TRUE(has_chart(html, "heatmap-after"));
  EXPECT_NE(html.find("training metrics &quot;load&quot;, step 1 (only)"), std::string::npos);
  EXPECT_NE(html.find("training metrics &quot;load&quot;, step 5 (only)"), std::string::npos);
  EXPECT_NE(html.find("id=\"chart-kl\">KL divergence: not available"), std::string::npos);
  EXPECT_NE(html.find("id=\"eval-na\""), std::string::npos);
}

TEST(Report, AbsoluteRouterDriftGetsItsChartWhenLogged) {
  // An upcycled router starts at zero: relative drift is a flat 1, the absolute change is the curve.
  TempDir dir;
  std::string text;
  for (int step = 1; step <= 4; ++step)
    text += Json{{"step", step}, {"phase", "p"}, {"phase_step", step}, {"loss", 3.0}, {"router_drift", 1.0},
                 {"router_drift_per_layer", {1.0, 1.0}}, {"router_drift_abs", 0.5 * step},
                 {"router_drift_abs_per_layer", {0.4 * step, 0.6 * step}}}.dump() + "\n";
  write(dir / "metrics.jsonl", text);
  const std::string html = render(dir.path());
  EXPECT_TRUE(has_chart(html, "chart-drift"));
  EXPECT_TRUE(has_chart(html, "chart-drift-abs"));
  EXPECT_NE(html.find("Router change ||W - W0||"), std::string::npos);
  // Older runs without the key keep the old set of charts (FullRunHasEveryChartTableAndPhase counts them).
  write(dir / "metrics.jsonl", metrics_jsonl({"only"}, 3));
  EXPECT_FALSE(has_chart(render(dir.path()), "chart-drift-abs"));
}

TEST(Report, MalformedMetricsLineNamesFileAndLine) {
  TempDir dir;
  std::string text = metrics_jsonl({"a"}, 2);
  write(dir / "train" / "metrics.jsonl", text + "{\"step\": 3, \"loss\": \n");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), (dir / "train" / "metrics.jsonl").string() + ":3: not valid JSON");
  write(dir / "train" / "metrics.jsonl", text + "{\"loss\": 1}\n");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), "metrics.jsonl:3: missing numeric \"step\"");
  write(dir / "train" / "metrics.jsonl", "[1, 2]\n");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), "metrics.jsonl:1: expected a JSON object");
}

TEST(Report, MalformedStatsOrEvalNamesFile) {
  TempDir dir;
  write(dir / "stats_after" / "stats.json", "{\"format\": ");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), (dir / "stats_after" / "stats.json").string() + ": invalid JSON");
  write(dir / "stats_after" / "stats.json", "{\"format\": \"something else\"}");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), "stats.json: not a moeforge stats file");
  remove_tree_or_fail(dir / "stats_after");
  write(dir / "eval.json", "not json");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), (dir / "eval.json").string() + ": invalid JSON");
  write(dir / "eval.json", "{\"perplexity\": 3}");
  MOEFORGE_EXPECT_ERROR(render(dir.path()), "eval.json: not a moeforge eval result");
}

TEST(Report, TextIsEscaped) {
  TempDir dir;
  write(dir / "metrics.jsonl", metrics_jsonl({"<script>alert('x')</script>&"}, 3));
  const std::string html = render(dir.path());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"), std::string::npos);
  EXPECT_EQ(tag_balance_error(html), "");
}

TEST(Report, NamedEvalResultsInOneFileGetOneTableEach) {
  TempDir dir;
  write(dir / "eval.json", "{\"before\": {\"loss\": 3.5, \"perplexity\": 33.1}, \"after\": {\"loss\": 3.25, \"perplexity\": 25.8}}");
  const std::string html = render(dir.path());
  EXPECT_EQ(count(html, "<table class=\"eval\">"), 2u);
  EXPECT_NE(html.find("<td>loss (nats/token)</td><td>3.25</td><td>&ndash;</td>"), std::string::npos);
}

TEST(Report, PipelineEvalJsonGetsATablePerModel) {
  TempDir dir;  // as src/pipeline/pipeline.cpp writes it: shared settings + "models" (each vs the base)
  Json base = {{"label", "base"}, {"model", "models/base"}, {"loss", 3.0}, {"perplexity", 20.0855}};
  Json trained = {{"label", "trained"}, {"model", "run/model"}, {"loss", 2.75}, {"perplexity", 15.6426},
                  {"baseline", {{"loss", 3.0}, {"perplexity", 20.0855}, {"mean_kl", 0.0456}}}};
  write(dir / "eval.json", Json{{"data", "d.jsonl"}, {"split", "validation"}, {"blocks", 16}, {"models", {base, trained}}}.dump(1));
  const std::string html = render(dir.path());
  EXPECT_EQ(count(html, "<table class=\"eval\">"), 2u);
  EXPECT_NE(html.find("<h3>eval.json [trained]</h3>"), std::string::npos);
  EXPECT_NE(html.find("<td>loss (nats/token)</td><td>2.75</td><td>3</td><td>-0.25</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>mean KL(baseline || model)</td><td>0.0456</td>"), std::string::npos);
  EXPECT_NE(html.find("data d.jsonl, split validation, 16 blocks"), std::string::npos);
  write(dir / "eval.json", Json{{"models", {base, {{"label", "broken"}}}}}.dump());
  MOEFORGE_EXPECT_ERROR(render(dir.path()), "eval.json: models[1] has no numeric \"loss\"");
}

TEST(RunFiles, SearchesThreeLevelsAndSkipsHiddenDirectories) {
  TempDir dir;
  write(dir / "a" / "b" / "c" / "metrics.jsonl", "");
  write(dir / "a" / "b" / "c" / "d" / "metrics.jsonl", "");  // too deep
  write(dir / ".stats.tmp-1" / "stats.json", "");           // unfinished write
  write(dir / "stats_before" / "stats.json", "");
  write(dir / "eval_after.json", "");
  write(dir / "notes.json", "");
  const RunFiles f = find_run_files(dir.path());
  EXPECT_EQ(f.metrics, std::vector<fs::path>{dir / "a" / "b" / "c" / "metrics.jsonl"});
  EXPECT_EQ(f.stats, std::vector<fs::path>{dir / "stats_before" / "stats.json"});
  EXPECT_EQ(f.evals, std::vector<fs::path>{dir / "eval_after.json"});
  MOEFORGE_EXPECT_ERROR(find_run_files(dir / "eval_after.json"), "not a directory");
}

TEST(TrainMetrics, StagesRestartingAtStepOneAreJoinedInOrder) {
  TempDir dir;
  write(dir / "train" / "stage1" / "metrics.jsonl", metrics_jsonl({"warm"}, 4));
  write(dir / "train" / "stage2" / "metrics.jsonl", metrics_jsonl({"tune"}, 3));
  const auto files = find_run_files(dir.path()).metrics;
  const TrainMetrics m = read_train_metrics(files, dir.path());
  ASSERT_EQ(m.records.size(), 7u);
  const auto spans = phase_spans(m);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].name, "train/stage1/warm");
  EXPECT_EQ(spans[1].name, "train/stage2/tune");
  EXPECT_EQ(spans[1].first_step, 5);
  EXPECT_EQ(spans[1].last_step, 7);
  // A NaN loss is logged as null: the point is left out, the record kept.
  write(dir / "m.jsonl", "{\"step\": 1, \"loss\": null, \"lr\": 0.1}\n\n{\"step\": 2, \"loss\": 1.5}\n");
  const auto records = read_metrics_file(dir / "m.jsonl");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].scalars.count("loss"), 0u);
  EXPECT_EQ(records[1].scalars.at("loss"), 1.5);
}

}  // namespace
}  // namespace moeforge::report
