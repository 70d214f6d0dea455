// Per-layer summaries, ESFT selection and the clone plan (see expert_analysis.h).
#include "stats/expert_analysis.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace moeforge::stats {

LayerSummary summarize_layer(const LayerStats& L, int64_t tokens, int64_t E) {
  LayerSummary s;
  s.layer = L.layer;
  s.usage = L.usage();
  s.expert_entropy = L.expert_entropy();
  double gate_total = std::accumulate(L.gate_sum.begin(), L.gate_sum.end(), 0.0);
  s.gate_share.resize(static_cast<size_t>(E));
  s.mean_prob.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    s.gate_share[e] = gate_total > 0 ? L.gate_sum[e] / gate_total : 0.0;
    s.mean_prob[e] = tokens > 0 ? L.prob_sum[e] / static_cast<double>(tokens) : 0.0;
  }
  s.token_entropy = tokens > 0 ? L.token_entropy_sum / static_cast<double>(tokens) : 0.0;
  double picked = 0, entropy_total = 0;
  for (int64_t e = 0; e < E; ++e)
    if (L.counts[e] > 0) picked += 1, entropy_total += s.expert_entropy[e];
  s.mean_expert_entropy = picked > 0 ? entropy_total / picked : 0.0;
  const auto [lo, hi] = std::minmax_element(s.usage.begin(), s.usage.end());
  s.max_minus_min = *hi - *lo;
  const double mean = 1.0 / static_cast<double>(E);
  double var = 0, h = 0, sw = 0;
  for (int64_t e = 0; e < E; ++e) {
    var += (s.usage[e] - mean) * (s.usage[e] - mean);
    if (s.usage[e] > 0) h -= s.usage[e] * std::log(s.usage[e]);
    sw += s.usage[e] * s.mean_prob[e];
  }
  s.cv = std::sqrt(var / static_cast<double>(E)) / mean;
  s.balance = E > 1 ? h / std::log(static_cast<double>(E)) : 1.0;
  s.switch_loss = static_cast<double>(E) * sw;
  return s;
}

std::vector<int64_t> rank_desc(const std::vector<double>& scores) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return idx;
}

std::vector<int64_t> esft_select(const std::vector<double>& scores, double top_p) {
  if (top_p <= 0 || top_p > 1) fail("--esft-top-p must be in (0, 1], got ", top_p);
  const double total = std::accumulate(scores.begin(), scores.end(), 0.0);
  std::vector<int64_t> out;
  if (total <= 0) return out;
  double cum = 0;
  for (int64_t e : rank_desc(scores)) {
    out.push_back(e);
    cum += scores[e] / total;
    if (cum >= top_p - 1e-12) break;
  }
  return out;
}

ClonePlan plan_clones(const std::vector<LayerSummary>& layers, const CloneOptions& o) {
  if (o.min_new < 1 || o.max_new < o.min_new) fail("clone count bounds must satisfy 1 <= min <= max");
  ClonePlan plan;
  for (const auto& s : layers) {
    const auto E = static_cast<double>(s.usage.size());
    int64_t n = static_cast<int64_t>(E * s.max_minus_min + 1.0);
    if (s.mean_expert_entropy < o.min_entropy) ++n;
    plan.suggested[s.layer] = std::clamp(n, o.min_new, o.max_new);
    std::vector<int64_t> keep;
    for (int64_t e : rank_desc(s.usage))
      if (s.usage[e] >= o.min_usage && s.expert_entropy[e] >= o.min_entropy) keep.push_back(e);
    plan.eligible[s.layer] = keep;
  }
  if (o.num_new > 0) {
    plan.num_new = o.num_new;
  } else {
    plan.num_new = o.min_new;
    for (const auto& [l, n] : plan.suggested) plan.num_new = std::max(plan.num_new, n);
  }
  for (const auto& s : layers) {
    std::vector<int64_t> pool = plan.eligible[s.layer];
    if (pool.empty()) {
      pool = rank_desc(s.usage);
      plan.notes.push_back(cat("layer ", s.layer, ": no expert has usage >= ", o.min_usage, " and entropy >= ", o.min_entropy,
                               "; cloning the most used experts instead"));
    }
    std::vector<int64_t> chosen;
    for (int64_t i = 0; i < plan.num_new; ++i) chosen.push_back(pool[static_cast<size_t>(i) % pool.size()]);
    plan.clone[s.layer] = chosen;
  }
  return plan;
}

}  // namespace moeforge::stats
