// `moeforge analyze`: turns STATS_DIR into a plan.json (arch/plan.h version 1 plus the analysis
// sections documented in docs/PLAN_SCHEMA.md), a readable table, and optional SVG figures.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "stats/expert_analysis.h"
#include "stats/pca_importance.h"
#include "stats/router_stats.h"

namespace moeforge::stats {

struct AnalyzeOptions {
  std::filesystem::path stats_dir;
  std::string esft_score = "token";  // token (share of top-k picks) | gate (share of combine weight)
  double esft_top_p = 0.2;
  std::string esft_domain;           // domain whose set fills esft.experts; "" = all data
  CloneOptions clone;
  int64_t pca_components = 20;       // NEXUS: n = min(20, T, E)
  int64_t pca_top_k = 0;             // experts listed as PCA top-K; 0 = max(1, E / 4)
  std::string pca_source = "auto";   // auto (dump if present, else moments) | dump | moments
};

struct Analysis {
  RouterStats stats;
  std::vector<LayerSummary> layers;
  std::vector<PcaImportance> pca;  // per layer; components == 0 when no source was available
  std::string pca_source;          // "dump", "moments" or "none"
  int64_t pca_top_k = 0;
  ClonePlan clones;
  // domain ("" = all data) -> layer -> experts, for the chosen score
  std::map<std::string, std::map<int64_t, std::vector<int64_t>>> esft;
};

Analysis analyze(const AnalyzeOptions& options);
nlohmann::json plan_json(const Analysis& analysis, const AnalyzeOptions& options);
std::string analysis_table(const Analysis& analysis, const AnalyzeOptions& options);

}  // namespace moeforge::stats
