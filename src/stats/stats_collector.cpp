// Router statistics accumulation on the device (definitions in router_stats.h).
#include "stats/stats_collector.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"

namespace moeforge::stats {
namespace {

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

StatsCollector::StatsCollector(std::vector<int64_t> moe_layers, CollectorOptions options, torch::Device device)
    : layers_(std::move(moe_layers)), options_(options) {
  const int64_t E = options_.num_experts, D = std::max<int64_t>(1, options_.num_domains);
  auto f64 = torch::TensorOptions().dtype(torch::kDouble).device(device);
  for (size_t i = 0; i < layers_.size(); ++i)
    sums_.push_back({torch::zeros({2 + D, 3 * E + 1}, f64), torch::zeros({2 * E, 2 * E}, f64), torch::zeros({options_.entropy_bins}, f64)});
}

torch::Tensor StatsCollector::add(const std::vector<model::LayerRouting>& routing, const torch::Tensor& rows_V,
                                  const torch::Tensor& domain_V, bool want_probs) {
  if (routing.size() != layers_.size())
    fail("stats: the forward pass returned routing for ", routing.size(), " MoE layers, expected ", layers_.size());
  const int64_t E = options_.num_experts, V = rows_V.size(0);
  if (V == 0) return torch::Tensor();
  const double log_e = E > 1 ? std::log(static_cast<double>(E)) : 1.0;
  const int64_t D = std::max<int64_t>(1, options_.num_domains);
  auto ones_V1 = torch::ones({V, 1}, torch::TensorOptions().dtype(torch::kFloat).device(rows_V.device()));
  auto domains_VD = torch::one_hot(domain_V, D).to(torch::kFloat);  // [V, D]
  std::vector<torch::Tensor> kept;
  for (size_t i = 0; i < routing.size(); ++i) {
    const auto& r = routing[i].routing;
    Sums& s = sums_[i];
    auto probs_VE = r.probs.index_select(0, rows_V).to(torch::kFloat);      // [V, E]
    auto ids_VK = r.expert_ids.index_select(0, rows_V);                     // [V, K]
    auto w_VK = r.weights.index_select(0, rows_V).to(torch::kFloat);        // [V, K]
    auto picks_VE = torch::zeros_like(probs_VE).scatter_(1, ids_VK, 1.0f);  // [V, E] 0/1
    auto gates_VE = torch::zeros_like(probs_VE).scatter_(1, ids_VK, w_VK);  // [V, E]
    auto q_VE = probs_VE / probs_VE.sum(-1, true).clamp_min(1e-30);
    auto h_V1 = -(q_VE * q_VE.clamp_min(1e-30).log()).sum(-1, true);        // [V, 1] nats
    auto left_VX = torch::cat({ones_V1, domains_VD, h_V1}, 1);              // [V, 2 + D]
    auto right_VY = torch::cat({picks_VE, gates_VE, probs_VE, h_V1}, 1);    // [V, 3E + 1]
    s.agg += torch::mm(left_VX.t(), right_VY).to(torch::kDouble);           // [2 + D, 3E + 1]
    auto pp_VZ = torch::cat({picks_VE, probs_VE}, 1);                       // [V, 2E]
    s.gram += torch::mm(pp_VZ.t(), pp_VZ).to(torch::kDouble);               // [2E, 2E]
    s.hist += torch::histc((h_V1 / log_e).clamp(0.0, 1.0), options_.entropy_bins, 0.0, 1.0).to(torch::kDouble);
    if (want_probs) kept.push_back(probs_VE);
  }
  tokens_ += V;
  return want_probs ? torch::stack(kept, 1) : torch::Tensor();  // [V, L, E]
}

void StatsCollector::finish(RouterStats& stats) const {
  stats.layers.clear();
  const int64_t E = options_.num_experts, D = std::max<int64_t>(1, options_.num_domains);
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto agg = sums_[i].agg.to(torch::kCPU), gram = sums_[i].gram.to(torch::kCPU);
    LayerStats L;
    L.layer = layers_[i];
    L.counts = to_vector(agg[0].narrow(0, 0, E));
    L.gate_sum = to_vector(agg[0].narrow(0, E, E));
    L.prob_sum = to_vector(agg[0].narrow(0, 2 * E, E));
    L.token_entropy_sum = agg[0][3 * E].item<double>();
    L.entropy_sum = to_vector(agg[1 + D].narrow(0, 0, E));
    L.coactivation = to_vector(gram.narrow(0, 0, E).narrow(1, 0, E));
    L.entropy_hist = to_vector(sums_[i].hist);
    for (int64_t d = 0; d < D; ++d) {
      L.domain_counts.push_back(to_vector(agg[1 + d].narrow(0, 0, E)));
      L.domain_gate_sum.push_back(to_vector(agg[1 + d].narrow(0, E, E)));
    }
    stats.layers.push_back(std::move(L));
  }
}

std::vector<torch::Tensor> StatsCollector::sum_tensors() const {
  std::vector<torch::Tensor> out;
  for (const auto& s : sums_) out.insert(out.end(), {s.agg, s.gram, s.hist});
  return out;
}

std::vector<std::pair<torch::Tensor, torch::Tensor>> StatsCollector::moments() const {
  const int64_t E = options_.num_experts;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> out;
  for (const auto& s : sums_) {
    auto agg = s.agg.to(torch::kCPU), gram = s.gram.to(torch::kCPU);
    out.emplace_back(agg[0].narrow(0, 2 * E, E).contiguous(), gram.narrow(0, E, E).narrow(1, E, E).contiguous());
  }
  return out;
}

}  // namespace moeforge::stats
