// The analysis behind `moeforge analyze`: summaries, PCA, ESFT, clone plan -> plan.json and a table.
#include "stats/analyze_job.h"

#include <torch/torch.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "io/safetensors_file.h"
#include "stats/prob_dump.h"

namespace moeforge::stats {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

torch::Tensor stored_f64(const SafetensorsFile& file, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* info = file.find(name);
  if (!info || info->dtype != DType::F64 || info->shape != shape)
    fail(file.path().string(), ": missing or malformed tensor '", name, "'");
  ByteView b = file.bytes(*info);
  return torch::from_blob(const_cast<uint8_t*>(b.data), shape, torch::kDouble).clone();
}

std::vector<PcaImportance> compute_pca(const RouterStats& s, const fs::path& dir, const AnalyzeOptions& o, std::string& source) {
  std::vector<PcaImportance> out(s.layers.size());
  const bool has_dump = !s.probs_safetensors.empty() && fs::exists(dir / s.probs_safetensors);
  const bool has_moments = !s.moments_file.empty() && fs::exists(dir / s.moments_file);
  if (o.pca_source != "auto" && o.pca_source != "dump" && o.pca_source != "moments")
    fail("--pca-source must be auto, dump or moments (got '", o.pca_source, "')");
  if (o.pca_source == "dump" && !has_dump) fail(dir.string(), ": has no router_probs.safetensors (run stats with --dump-probs)");
  if (o.pca_source == "moments" && !has_moments) fail(dir.string(), ": has no router_moments.safetensors");
  if (has_dump && o.pca_source != "moments") {
    source = "dump";
    auto probs_TLE = read_prob_dump(dir / s.probs_safetensors);
    if (probs_TLE.size(1) != static_cast<int64_t>(s.layers.size()) || probs_TLE.size(2) != s.num_experts)
      fail((dir / s.probs_safetensors).string(), ": shape does not match stats.json");
    for (size_t i = 0; i < s.layers.size(); ++i)
      out[i] = pca_importance(probs_TLE.select(1, static_cast<int64_t>(i)), o.pca_components);
  } else if (has_moments) {
    source = "moments";
    auto file = SafetensorsFile::open(dir / s.moments_file);
    const int64_t E = s.num_experts;
    for (size_t i = 0; i < s.layers.size(); ++i) {
      const std::string p = "layers." + std::to_string(s.layers[i].layer) + ".";
      out[i] = pca_importance_from_moments(stored_f64(*file, p + "prob_sum", {E}), stored_f64(*file, p + "prob_outer", {E, E}),
                                           s.tokens, o.pca_components);
    }
  } else {
    source = "none";
  }
  return out;
}

std::vector<int64_t> top_of(const std::vector<double>& scores, int64_t k) {
  auto r = rank_desc(scores);
  r.resize(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(r.size()))));
  return r;
}

std::string fmt(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string list(const std::vector<int64_t>& v, size_t max = 6) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; ++i) out += (i ? "," : "") + std::to_string(v[i]);
  if (v.size() > max) out += ",..";
  return out.empty() ? "-" : out;
}

}  // namespace

Analysis analyze(const AnalyzeOptions& o) {
  Analysis a;
  a.stats = read_stats(o.stats_dir);
  const RouterStats& s = a.stats;
  if (!s.collected || s.layers.empty()) fail(o.stats_dir.string(), ": holds no router statistics (written with --forward-only?)");
  if (s.tokens < 1) fail(o.stats_dir.string(), ": counted no tokens");
  if (o.esft_score != "token" && o.esft_score != "gate") fail("--esft-score must be token or gate (got '", o.esft_score, "')");
  if (!o.esft_domain.empty() && std::find(s.domains.begin(), s.domains.end(), o.esft_domain) == s.domains.end())
  {
    std::string names;
    for (const auto& n : s.domains) names += (names.empty() ? "" : ", ") + n;
    fail("--esft-domain '", o.esft_domain, "' is not a domain of ", o.stats_dir.string(), " (domains: ", names, ")");
  }
  for (const auto& L : s.layers) a.layers.push_back(summarize_layer(L, s.tokens, s.num_experts));
  const fs::path dir = fs::is_directory(o.stats_dir) ? o.stats_dir : o.stats_dir.parent_path();
  a.pca = compute_pca(s, dir, o, a.pca_source);
  a.pca_top_k = o.pca_top_k > 0 ? std::min(o.pca_top_k, s.num_experts) : std::max<int64_t>(1, s.num_experts / 4);
  a.clones = plan_clones(a.layers, o.clone);
  const bool gate = o.esft_score == "gate";
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const auto& L = s.layers[i];
    a.esft[""][L.layer] = esft_select(gate ? L.gate_sum : L.counts, o.esft_top_p);
    for (size_t d = 0; d < s.domains.size(); ++d)
      a.esft[s.domains[d]][L.layer] = esft_select(gate ? L.domain_gate_sum[d] : L.domain_counts[d], o.esft_top_p);
  }
  return a;
}

Json plan_json(const Analysis& a, const AnalyzeOptions& o) {
  const RouterStats& s = a.stats;
  Json plan = {{"version", 1},
               {"model", {{"model_type", s.model_type}, {"num_layers", s.num_layers}, {"num_experts", s.num_experts}, {"hidden_size", s.hidden_size}}}};
  plan["generator"] = {{"tool", "moeforge analyze"}, {"stats", o.stats_dir.string()}, {"model_path", s.model_path},
                       {"data", s.data_spec}, {"tokens", s.tokens}, {"top_k", s.top_k}};
  Json clone = Json::object(), usage = Json::object(), importance = Json::object(), layers = Json::object();
  Json top1 = Json::object(), top4 = Json::object(), pca_top = Json::object();
  std::vector<double> total_usage(static_cast<size_t>(s.num_experts), 0.0);
  double balance = 0;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const LayerSummary& L = a.layers[i];
    const std::string key = std::to_string(L.layer);
    clone[key] = a.clones.clone.at(L.layer);
    usage[key] = L.usage;
    const PcaImportance& p = a.pca[i];
    if (p.components > 0) {
      importance[key] = p.importance;
      pca_top[key] = top_of(p.importance, a.pca_top_k);
    }
    top1[key] = top_of(L.usage, 1);
    top4[key] = top_of(L.usage, 4);
    for (size_t e = 0; e < total_usage.size(); ++e) total_usage[e] += L.usage[e];
    balance += L.balance;
    Json lj = {{"usage_max_minus_min", L.max_minus_min}, {"usage_cv", L.cv},           {"balance", L.balance},
               {"switch_loss", L.switch_loss},          {"token_entropy", L.token_entropy},
               {"mean_expert_entropy", L.mean_expert_entropy},
               {"expert_entropy", L.expert_entropy},     {"gate_share", L.gate_share}, {"mean_prob", L.mean_prob}};
    if (p.components > 0)
      lj["pca"] = {{"components", p.components}, {"explained_variance_ratio", p.explained_variance_ratio}, {"top", pca_top[key]}};
    if (!s.layers[i].loss_delta.empty()) lj["loss_delta"] = s.layers[i].loss_delta;
    layers[key] = lj;
  }
  plan["clone"] = clone;
  plan["usage"] = usage;
  if (!importance.empty()) plan["importance"] = importance;
  plan["layers"] = layers;
  plan["summary"] = {{"balance_score", balance / static_cast<double>(std::max<size_t>(1, a.layers.size()))},
                     {"moe_layers", a.layers.size()}, {"pca_source", a.pca_source}};
  Json suggested = Json::object(), eligible = Json::object();
  for (const auto& [l, n] : a.clones.suggested) suggested[std::to_string(l)] = n;
  for (const auto& [l, v] : a.clones.eligible) eligible[std::to_string(l)] = v;
  plan["clone_rule"] = {{"min_usage", o.clone.min_usage}, {"min_entropy", o.clone.min_entropy}, {"num_new", a.clones.num_new},
                        {"num_new_given", o.clone.num_new > 0}, {"suggested", suggested}, {"eligible", eligible},
                        {"notes", a.clones.notes}};
  plan["shared_expert"] = {{"top1", top1}, {"top4", top4}, {"global_top1", top_of(total_usage, 1)},
                           {"global_top4", top_of(total_usage, 4)}, {"pca_k", a.pca_top_k}};
  if (!pca_top.empty()) plan["shared_expert"]["pca_top"] = pca_top;
  auto per_layer = [](const std::map<int64_t, std::vector<int64_t>>& m) {
    Json j = Json::object();
    for (const auto& [l, v] : m) j[std::to_string(l)] = v;
    return j;
  };
  Json domains = Json::object();
  for (const auto& [d, m] : a.esft)
    if (!d.empty()) domains[d] = per_layer(m);
  plan["esft"] = {{"score", o.esft_score}, {"top_p", o.esft_top_p}, {"domain", o.esft_domain},
                  {"experts", per_layer(a.esft.at(o.esft_domain))}, {"all", per_layer(a.esft.at(""))}, {"domains", domains}};
  return plan;
}

std::string analysis_table(const Analysis& a, const AnalyzeOptions& o) {
  const RouterStats& s = a.stats;
  std::ostringstream out;
  out << "model " << s.model_path << " (" << s.model_type << ", " << s.num_experts << " experts, top-" << s.top_k << "), "
      << s.tokens << " tokens of " << s.data_spec << (s.calibrated ? " (calibrated)" : "") << "\n";
  if (!s.domains.empty()) {
    out << "domains:";
    for (size_t d = 0; d < s.domains.size(); ++d) out << " " << s.domains[d] << "=" << s.domain_tokens[d];
    out << "\n";
  }
  char line[512];
  std::snprintf(line, sizeof line, "%-6s %-8s %-7s %-8s %-8s %-16s %-16s %-14s %s\n", "layer", "balance", "cv", "max-min",
                "H(tok)", "most used", "PCA top", "clone", std::string("ESFT " + (o.esft_domain.empty() ? std::string("all") : o.esft_domain)).c_str());
  out << line;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const LayerSummary& L = a.layers[i];
    std::string used;
    for (int64_t e : top_of(L.usage, 3)) used += (used.empty() ? "" : " ") + std::to_string(e) + ":" + fmt(L.usage[e], 2);
    const std::string pca = a.pca[i].components > 0 ? list(top_of(a.pca[i].importance, a.pca_top_k), 4) : "-";
    std::snprintf(line, sizeof line, "%-6lld %-8s %-7s %-8s %-8s %-16s %-16s %-14s %s\n", static_cast<long long>(L.layer),
                  fmt(L.balance).c_str(), fmt(L.cv).c_str(), fmt(L.max_minus_min).c_str(), fmt(L.token_entropy).c_str(),
                  used.c_str(), pca.c_str(), list(a.clones.clone.at(L.layer)).c_str(),
                  list(a.esft.at(o.esft_domain).at(L.layer)).c_str());
    out << line;
  }
  out << "clone: " << a.clones.num_new << " new expert(s) per layer" << (o.clone.num_new > 0 ? " (given)" : " (rule)")
      << "; PCA from " << a.pca_source << "\n";
  for (const auto& n : a.clones.notes) out << "note: " << n << "\n";
  return out.str();
}

}  // namespace moeforge::stats
