// `moeforge analyze STATS_DIR --out plan.json [--format table] [--plots DIR]`: usage, imbalance,
// PCA importance, ESFT sets, clone plan and shared-expert sources (stats/analyze_job.h).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "stats/analysis_plots.h"
#include "stats/analyze_job.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<stats::AnalyzeOptions>();
  auto dir = std::make_shared<std::string>(), out = std::make_shared<std::string>(), plots = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("json");
  auto plot_layer = std::make_shared<int64_t>(-1);
  auto* sub = app.add_subcommand("analyze", "Expert analysis of `moeforge stats` output -> plan.json (grow, add-shared-expert, train)");
  sub->add_option("stats", *dir, "STATS_DIR written by `moeforge stats`")->required();
  sub->add_option("--out", *out, "plan.json to write (docs/PLAN_SCHEMA.md)");
  sub->add_option("--format", *format, "json (plan on stdout when no --out) or table")->capture_default_str();
  sub->add_option("--plots", *plots, "directory for SVG figures");
  sub->add_option("--plot-layer", *plot_layer, "MoE layer of the co-activation and domain figures (default: least balanced)");
  sub->add_option("--esft-score", o->esft_score, "token (share of top-k picks) or gate (share of gate weight)")->capture_default_str();
  sub->add_option("--esft-top-p", o->esft_top_p, "cumulative score an ESFT set must reach")->capture_default_str();
  sub->add_option("--esft-domain", o->esft_domain, "domain whose ESFT set fills esft.experts (default: all data)");
  sub->add_option("--clone-min-usage", o->clone.min_usage, "clone candidates need usage >= this")->capture_default_str();
  sub->add_option("--clone-min-entropy", o->clone.min_entropy, "... and routing entropy (nats) >= this")->capture_default_str();
  sub->add_option("--num-new", o->clone.num_new, "clones per MoE layer (0 = expert-extension rule)")->capture_default_str();
  sub->add_option("--max-new", o->clone.max_new, "upper clamp of the rule")->capture_default_str();
  sub->add_option("--pca-components", o->pca_components, "at most this many components (NEXUS: 20)")->capture_default_str();
  sub->add_option("--pca-top-k", o->pca_top_k, "experts listed as PCA top-K (0 = E/4)")->capture_default_str();
  sub->add_option("--pca-source", o->pca_source, "auto, dump (router_probs) or moments")->capture_default_str();
  set_action(sub, [o, dir, out, plots, format, plot_layer] {
    if (*format != "json" && *format != "table") fail("--format must be json or table (got '", *format, "')");
    o->stats_dir = *dir;
    stats::Analysis a = stats::analyze(*o);
    const auto plan = stats::plan_json(a, *o);
    if (!out->empty()) write_file_atomic(*out, plan.dump(1) + "\n");
    if (*format == "table") std::cout << stats::analysis_table(a, *o);
    else if (out->empty()) std::cout << plan.dump(1) << "\n";
    if (!plots->empty())
      for (const auto& f : stats::write_plots(a, *plots, *plot_layer)) std::cerr << "wrote " << f.string() << "\n";
    if (!out->empty()) std::cerr << "wrote " << *out << "\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
