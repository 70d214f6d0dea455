// The analysis rules in isolation: npy headers, ESFT sets, the clone rule, PCA importance (matrix
// vs moments, and a hand-computable case), calibration sampling, stats.json round trip.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "stats/calibration.h"
#include "stats/expert_analysis.h"
#include "stats/npz_writer.h"
#include "stats/pca_importance.h"
#include "stats/router_stats.h"
#include "test_util.h"

namespace moeforge::stats {
namespace {

TEST(StatsMath, NpyHeaderIsAlignedVersionOne) {
  std::string h = npy_header("<f2", {3, 2, 4});
  EXPECT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_NE(h.find("'shape': (3,2,4)"), std::string::npos);
  EXPECT_NE(npy_header("<i8", {5}).find("(5,)"), std::string::npos);
  EXPECT_NE(npy_header("<i8", {}).find("'shape': ()"), std::string::npos);
  EXPECT_EQ(h.back(), '\n');
  EXPECT_EQ(utf32le("a\xC3\xA9"), std::string("a\0\0\0\xE9\0\0\0", 8));
}

TEST(StatsMath, EsftTakesTheSmallestSetReachingTopP) {
  EXPECT_EQ(esft_select({10, 50, 30, 10}, 0.2), (std::vector<int64_t>{1}));
  EXPECT_EQ(esft_select({10, 50, 30, 10}, 0.6), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(esft_select({10, 50, 30, 10}, 1.0), (std::vector<int64_t>{1, 2, 0, 3}));
  EXPECT_TRUE(esft_select({0, 0}, 0.5).empty());
  MOEFORGE_EXPECT_ERROR(esft_select({1}, 0.0), "top-p");
}

LayerStats layer(int64_t l, std::vector<double> counts, std::vector<double> entropy) {
  LayerStats s;
  s.layer = l;
  s.counts = counts;
  s.gate_sum = counts;
  s.prob_sum = counts;
  for (size_t e = 0; e < counts.size(); ++e) s.entropy_sum.push_back(entropy[e] * counts[e]);
  return s;
}

TEST(StatsMath, CloneRuleMatchesTheExpertExtensionDefaults) {
  // usage 0.5, 0.3, 0.19, 0.01: E*(max-min)+1 = 4*0.49+1 = 2.96 -> 2; expert 3 fails usage,
  // expert 1 fails entropy.
  auto a = summarize_layer(layer(0, {50, 30, 19, 1}, {1.0, 0.4, 0.9, 2.0}), 50, 4);
  EXPECT_NEAR(a.max_minus_min, 0.49, 1e-12);
  ClonePlan p = plan_clones({a}, {});
  EXPECT_EQ(p.suggested.at(0), 2);
  EXPECT_EQ(p.eligible.at(0), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(p.clone.at(0), (std::vector<int64_t>{0, 2}));
  // low mean entropy adds one; the count is shared by all layers (max), eligible experts cycle
  auto b = summarize_layer(layer(1, {25, 25, 25, 25}, {0.1, 0.1, 0.6, 0.1}), 50, 4);
  p = plan_clones({a, b}, {});
  EXPECT_EQ(p.suggested.at(1), 2);
  EXPECT_EQ(p.num_new, 2);
  EXPECT_EQ(p.clone.at(1), (std::vector<int64_t>{2, 2}));
  CloneOptions o;
  o.num_new = 3;
  o.min_entropy = 5;  // nobody qualifies: fall back to usage order, noted
  p = plan_clones({a}, o);
  EXPECT_EQ(p.clone.at(0), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(p.notes.size(), 1u);
  EXPECT_NEAR(b.balance, 1.0, 1e-12);
  EXPECT_NEAR(b.cv, 0.0, 1e-12);
}

TEST(StatsMath, PcaImportanceFromMatrixAndMomentsAgree) {
  torch::manual_seed(0);
  auto x = torch::softmax(torch::randn({200, 6}, torch::kDouble) * torch::tensor({3.0, 1.0, 1.0, 1.0, 1.0, 1.0}, torch::kDouble), -1);
  auto a = pca_importance(x, 20);
  auto b = pca_importance_from_moments(x.sum(0), torch::mm(x.t(), x), 200, 20);
  ASSERT_EQ(a.components, 6);
  for (size_t e = 0; e < 6; ++e) EXPECT_NEAR(a.importance[e], b.importance[e], 1e-9);
  double total = 0;
  for (double r : a.explained_variance_ratio) total += r;
  EXPECT_NEAR(total, 1.0, 1e-9);
  EXPECT_EQ(rank_desc(a.importance).front(), 0);  // the high-variance expert
  // Variance only along expert 0 vs 1: one component (1, -1)/sqrt2 with ratio 1.
  auto y = torch::zeros({4, 3}, torch::kDouble);
  y.index_put_({torch::indexing::Slice(), 0}, torch::tensor({1.0, 0.0, 1.0, 0.0}, torch::kDouble));
  y.index_put_({torch::indexing::Slice(), 1}, torch::tensor({0.0, 1.0, 0.0, 1.0}, torch::kDouble));
  auto c = pca_importance(y, 2);
  EXPECT_NEAR(c.importance[0], std::sqrt(0.5), 1e-9);
  EXPECT_NEAR(c.importance[1], std::sqrt(0.5), 1e-9);
  EXPECT_NEAR(c.importance[2], 0.0, 1e-9);
}

TEST(StatsMath, CalibrationMatchesThePoolDistribution) {
  // Pool: blocks of only 1s, only 2s, and mixed halves; the pool is 50/50, so a 2-block sample of
  // the mixed blocks (or one of each pure kind) has KL 0; the greedy rule finds a mixed one first.
  std::vector<std::vector<int32_t>> pool = {{1, 1, 1, 1}, {2, 2, 2, 2}, {1, 2, 1, 2}, {1, 1, 1, 1}, {2, 2, 2, 2}, {2, 1, 2, 1}};
  CalibrationResult r = select_calibration(pool, 8);
  ASSERT_EQ(r.chosen.size(), 2u);
  EXPECT_TRUE(r.chosen[0] == 2 || r.chosen[0] == 5);
  EXPECT_NEAR(r.kl, 0.0, 1e-12);
  EXPECT_NEAR(unigram_kl({1, 3}, {1, 1}), 0.25 * std::log(0.5) + 0.75 * std::log(1.5), 1e-12);
}

TEST(StatsMath, StatsJsonRoundTripsAndValidates) {
  RouterStats s;
  s.model_type = "mixtral";
  s.num_layers = 2;
  s.num_experts = 2;
  s.hidden_size = 8;
  s.top_k = 1;
  s.tokens = 4;
  s.block_size = 4;
  s.blocks = 1;
  s.domains = {"code"};
  s.domain_tokens = {4};
  s.entropy_bins = 2;
  LayerStats L = layer(1, {3, 1}, {0.5, 0.25});
  L.coactivation = {3, 0, 0, 1};
  L.entropy_hist = {1, 3};
  L.token_entropy_sum = 1.75;
  L.domain_counts = {{3, 1}};
  L.domain_gate_sum = {{3, 1}};
  s.layers = {L};
  auto j = to_json(s);
  RouterStats r = stats_from_json(j, "s.json");
  EXPECT_EQ(r.layers[0].counts, L.counts);
  EXPECT_NEAR(r.layers[0].entropy_sum[0], 1.5, 1e-12);
  EXPECT_NEAR(r.layers[0].token_entropy_sum, 1.75, 1e-12);
  j["version"] = 9;
  MOEFORGE_EXPECT_ERROR(stats_from_json(j, "s.json"), "version 9");
  j = to_json(s);
  j["layers"][0]["counts"] = {1};
  MOEFORGE_EXPECT_ERROR(stats_from_json(j, "s.json"), "counts must be a list of 2");
}

}  // namespace
}  // namespace moeforge::stats
