// Greedy KL calibration sampling (see calibration.h).
//
// With sample counts s_v (total n) and pool probabilities P_v:
//   KL(S || P) = sum_v (s_v/n) log((s_v/n) / P_v) = A/n - log n - B/n,
//   A = sum_v s_v log s_v,   B = sum_v s_v log P_v.
// Adding a block with counts c_v changes A and B only at the block's ids, so scoring a candidate
// costs O(its distinct ids).
#include "stats/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace moeforge::stats {
namespace {

double xlogx(double x) { return x > 0 ? x * std::log(x) : 0.0; }

using Counts = std::vector<std::pair<int32_t, int32_t>>;  // (id, count), sorted by id

Counts sparse_counts(std::vector<int32_t> ids) {
  std::sort(ids.begin(), ids.end());
  Counts out;
  for (int32_t id : ids) {
    if (!out.empty() && out.back().first == id) ++out.back().second;
    else out.emplace_back(id, 1);
  }
  return out;
}

}  // namespace

double unigram_kl(const std::vector<double>& p_counts, const std::vector<double>& q_counts) {
  double np = 0, nq = 0, kl = 0;
  for (double v : p_counts) np += v;
  for (double v : q_counts) nq += v;
  for (size_t i = 0; i < p_counts.size(); ++i)
    if (p_counts[i] > 0) kl += (p_counts[i] / np) * std::log((p_counts[i] / np) / (q_counts[i] / nq));
  return kl;
}

CalibrationResult select_calibration(const std::vector<std::vector<int32_t>>& candidates, int64_t target_tokens) {
  CalibrationResult result;
  std::vector<Counts> counts;
  int32_t max_id = 0;
  double pool_total = 0;
  for (const auto& c : candidates) {
    counts.push_back(sparse_counts(c));
    for (int32_t id : c) max_id = std::max(max_id, id);
    pool_total += static_cast<double>(c.size());
  }
  if (pool_total == 0) return result;
  std::vector<double> log_p(static_cast<size_t>(max_id) + 1, 0.0), pool(log_p.size(), 0.0);
  for (const auto& c : counts)
    for (auto [id, n] : c) pool[id] += n;
  for (size_t v = 0; v < pool.size(); ++v) log_p[v] = pool[v] > 0 ? std::log(pool[v] / pool_total) : 0.0;

  std::vector<double> s(log_p.size(), 0.0);
  std::vector<bool> used(candidates.size(), false);
  double A = 0, B = 0, n = 0;
  while (static_cast<int64_t>(n) < target_tokens) {
    double best = std::numeric_limits<double>::infinity(), best_dA = 0, best_dB = 0;
    size_t best_i = candidates.size();
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (used[i] || candidates[i].empty()) continue;
      double dA = 0, dB = 0;
      for (auto [id, c] : counts[i]) {
        dA += xlogx(s[id] + c) - xlogx(s[id]);
        dB += c * log_p[id];
      }
      const double n2 = n + static_cast<double>(candidates[i].size());
      const double kl = (A + dA) / n2 - std::log(n2) - (B + dB) / n2;
      if (kl < best - 1e-12) best = kl, best_i = i, best_dA = dA, best_dB = dB;
    }
    if (best_i == candidates.size()) break;  // pool exhausted
    used[best_i] = true;
    for (auto [id, c] : counts[best_i]) s[id] += c;
    A += best_dA;
    B += best_dB;
    n += static_cast<double>(candidates[best_i].size());
    result.chosen.push_back(best_i);
    result.kl = std::max(0.0, best);
  }
  return result;
}

}  // namespace moeforge::stats
