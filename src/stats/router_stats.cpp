// stats.json writer and validating reader (schema: docs/PLAN_SCHEMA.md).
#include "stats/router_stats.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge::stats {
namespace {

using Json = nlohmann::json;

Json integers(const std::vector<double>& v) {
  Json out = Json::array();
  for (double x : v) out.push_back(static_cast<int64_t>(std::llround(x)));
  return out;
}

std::vector<double> scaled(const std::vector<double>& v, double by) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[i] * by;
  return out;
}

struct Reader {
  std::string label;
  const Json& field(const Json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object() || !obj.contains(key)) fail(label, ": ", where, " is missing \"", key, "\"");
    return obj[key];
  }
  std::vector<double> numbers(const Json& obj, const char* key, const std::string& where, size_t size) const {
    const Json& a = field(obj, key, where);
    if (!a.is_array() || (size && a.size() != size))
      fail(label, ": ", where, ".", key, " must be a list of ", size, " numbers");
    std::vector<double> out;
    for (const auto& v : a) {
      if (!v.is_number()) fail(label, ": ", where, ".", key, " must hold numbers");
      out.push_back(v.get<double>());
    }
    return out;
  }
  int64_t integer(const Json& obj, const char* key, const std::string& where) const {
    const Json& v = field(obj, key, where);
    if (!v.is_number_integer()) fail(label, ": ", where, ".", key, " must be an integer");
    return v.get<int64_t>();
  }
};

}  // namespace

std::vector<double> LayerStats::usage() const {
  double total = 0;
  for (double c : counts) total += c;
  return scaled(counts, total > 0 ? 1.0 / total : 0.0);
}

std::vector<double> LayerStats::expert_entropy() const {
  std::vector<double> out(counts.size(), 0.0);
  for (size_t e = 0; e < counts.size(); ++e) out[e] = counts[e] > 0 ? entropy_sum[e] / counts[e] : 0.0;
  return out;
}

Json to_json(const RouterStats& s) {
  Json root = {{"format", "moeforge.router_stats"}, {"version", kStatsVersion}};
  root["model"] = {{"path", s.model_path},         {"model_type", s.model_type},   {"num_layers", s.num_layers},
                   {"num_experts", s.num_experts}, {"hidden_size", s.hidden_size}, {"top_k", s.top_k}};
  Json domains = Json::array();
  for (size_t d = 0; d < s.domains.size(); ++d) domains.push_back({{"name", s.domains[d]}, {"tokens", s.domain_tokens[d]}});
  root["data"] = {{"spec", s.data_spec}, {"block_size", s.block_size}, {"blocks", s.blocks}, {"tokens", s.tokens},
                  {"domains", domains},  {"calibrated", s.calibrated}};
  if (s.calibrated) root["data"]["calibration_kl"] = s.calibration_kl;
  root["entropy_bins"] = s.entropy_bins;
  const double inv_tokens = s.tokens > 0 ? 1.0 / static_cast<double>(s.tokens) : 0.0;
  Json layers = Json::array();
  for (const auto& L : s.layers) {
    const int64_t E = static_cast<int64_t>(L.counts.size());
    Json j = {{"layer", L.layer},
              {"counts", integers(L.counts)},
              {"usage", L.usage()},
              {"gate_weight_sum", L.gate_sum},
              {"mean_prob", scaled(L.prob_sum, inv_tokens)},
              {"expert_entropy", L.expert_entropy()},
              {"token_entropy", {{"mean", L.token_entropy_sum * inv_tokens}, {"histogram", integers(L.entropy_hist)}}}};
    Json co = Json::array();
    for (int64_t i = 0; i < E; ++i)
      co.push_back(integers(std::vector<double>(L.coactivation.begin() + i * E, L.coactivation.begin() + (i + 1) * E)));
    j["coactivation"] = co;
    Json dom = Json::object();
    for (size_t d = 0; d < s.domains.size() && d < L.domain_counts.size(); ++d)
      dom[s.domains[d]] = {{"counts", integers(L.domain_counts[d])}, {"gate_weight_sum", L.domain_gate_sum[d]}};
    j["domains"] = dom;
    if (!L.loss_delta.empty()) j["loss_delta"] = L.loss_delta;
    layers.push_back(std::move(j));
  }
  root["layers"] = layers;
  if (s.loss_delta_tokens > 0) root["loss_delta"] = {{"tokens", s.loss_delta_tokens}, {"base_loss", s.loss_base}};
  Json files = Json::object();
  if (!s.probs_npz.empty()) files["router_probs_npz"] = s.probs_npz;
  if (!s.probs_safetensors.empty()) files["router_probs_safetensors"] = s.probs_safetensors;
  if (!s.moments_file.empty()) files["router_moments"] = s.moments_file;
  root["files"] = files;
  root["timing"] = {{"loop_seconds", s.loop_seconds}, {"collect_seconds", s.collect_seconds}, {"collected", s.collected}};
  return root;
}

RouterStats stats_from_json(const Json& root, const std::string& label) {
  Reader r{label};
  if (!root.is_object()) fail(label, ": stats.json must be a JSON object");
  if (root.value("format", "") != "moeforge.router_stats") fail(label, ": not a moeforge stats file (\"format\" is not \"moeforge.router_stats\")");
  const int64_t version = r.integer(root, "version", "the file");
  if (version != kStatsVersion) fail(label, ": stats version ", version, " is not supported (this moeforge reads version ", kStatsVersion, ")");
  RouterStats s;
  const Json& m = r.field(root, "model", "the file");
  s.model_path = m.value("path", "");
  if (!m.contains("model_type") || !m["model_type"].is_string()) fail(label, ": \"model\" needs string \"model_type\"");
  s.model_type = m["model_type"].get<std::string>();
  s.num_layers = r.integer(m, "num_layers", "model");
  s.num_experts = r.integer(m, "num_experts", "model");
  s.hidden_size = r.integer(m, "hidden_size", "model");
  s.top_k = r.integer(m, "top_k", "model");
  if (s.num_experts < 1 || s.top_k < 1 || s.top_k > s.num_experts) fail(label, ": model.num_experts/top_k are inconsistent");
  const Json& d = r.field(root, "data", "the file");
  s.data_spec = d.value("spec", "");
  s.block_size = r.integer(d, "block_size", "data");
  s.blocks = r.integer(d, "blocks", "data");
  s.tokens = r.integer(d, "tokens", "data");
  s.calibrated = d.value("calibrated", false);
  s.calibration_kl = d.value("calibration_kl", 0.0);
  for (const auto& dom : r.field(d, "domains", "data")) {
    s.domains.push_back(r.field(dom, "name", "data.domains[]").get<std::string>());
    s.domain_tokens.push_back(r.integer(dom, "tokens", "data.domains[]"));
  }
  s.entropy_bins = r.integer(root, "entropy_bins", "the file");
  const auto E = static_cast<size_t>(s.num_experts);
  const double tokens = static_cast<double>(s.tokens);
  for (const auto& j : r.field(root, "layers", "the file")) {
    LayerStats L;
    L.layer = r.integer(j, "layer", "layers[]");
    const std::string where = "layers[" + std::to_string(L.layer) + "]";
    if (L.layer < 0 || L.layer >= s.num_layers) fail(label, ": ", where, " is outside the model's ", s.num_layers, " layers");
    L.counts = r.numbers(j, "counts", where, E);
    L.gate_sum = r.numbers(j, "gate_weight_sum", where, E);
    L.prob_sum = scaled(r.numbers(j, "mean_prob", where, E), tokens);
    const auto entropy = r.numbers(j, "expert_entropy", where, E);
    L.entropy_sum.resize(E);
    for (size_t e = 0; e < E; ++e) L.entropy_sum[e] = entropy[e] * L.counts[e];
    const Json& te = r.field(j, "token_entropy", where);
    L.token_entropy_sum = r.field(te, "mean", where + ".token_entropy").get<double>() * tokens;
    L.entropy_hist = r.numbers(te, "histogram", where + ".token_entropy", static_cast<size_t>(s.entropy_bins));
    const Json& co = r.field(j, "coactivation", where);
    if (!co.is_array() || co.size() != E) fail(label, ": ", where, ".coactivation must be ", E, " x ", E);
    for (const auto& row : co) {
      if (!row.is_array() || row.size() != E) fail(label, ": ", where, ".coactivation must be ", E, " x ", E);
      for (const auto& v : row) L.coactivation.push_back(v.get<double>());
    }
    const Json& dom = r.field(j, "domains", where);
    for (const auto& name : s.domains) {
      if (!dom.contains(name)) fail(label, ": ", where, ".domains has no entry for domain '", name, "'");
      L.domain_counts.push_back(r.numbers(dom[name], "counts", where + ".domains." + name, E));
      L.domain_gate_sum.push_back(r.numbers(dom[name], "gate_weight_sum", where + ".domains." + name, E));
    }
    if (j.contains("loss_delta")) L.loss_delta = r.numbers(j, "loss_delta", where, E);
    s.layers.push_back(std::move(L));
  }
  if (root.contains("loss_delta")) {
    s.loss_delta_tokens = r.integer(root["loss_delta"], "tokens", "loss_delta");
    s.loss_base = r.field(root["loss_delta"], "base_loss", "loss_delta").get<double>();
  }
  if (root.contains("files")) {
    const Json& f = root["files"];
    s.probs_npz = f.value("router_probs_npz", "");
    s.probs_safetensors = f.value("router_probs_safetensors", "");
    s.moments_file = f.value("router_moments", "");
  }
  if (root.contains("timing")) {
    s.loop_seconds = root["timing"].value("loop_seconds", 0.0);
    s.collect_seconds = root["timing"].value("collect_seconds", 0.0);
    s.collected = root["timing"].value("collected", true);
  }
  return s;
}

RouterStats read_stats(const std::filesystem::path& stats_dir) {
  const auto file = std::filesystem::is_directory(stats_dir) ? stats_dir / "stats.json" : stats_dir;
  if (!std::filesystem::exists(file)) fail(file.string(), ": no such file (run `moeforge stats ... --out DIR` first)");
  return stats_from_json(read_json_file(file), file.string());
}

}  // namespace moeforge::stats
