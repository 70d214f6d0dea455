// Plan files, clone/layer lists, expert initialisers and the moeforge config extensions.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "arch/family_adapter.h"
#include "arch/plan.h"
#include "surgery/expert_init.h"
#include "surgery/grow.h"
#include "surgery/surgery_util.h"
#include "test_util.h"

namespace moeforge::surgery {
namespace {

ModelSpec tiny_mixtral(nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json c = {{"model_type", "mixtral"}, {"hidden_size", 64}, {"num_hidden_layers", 3},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 100},
                      {"intermediate_size", 32}, {"num_local_experts", 4}, {"num_experts_per_tok", 2}};
  c.update(extra);
  return spec_from_config(c, nullptr, "tiny/config.json");
}

nlohmann::json plan_json() {
  return {{"version", 1},
          {"model", {{"model_type", "mixtral"}, {"num_layers", 3}, {"num_experts", 4}, {"hidden_size", 64}}},
          {"clone", {{"0", {1, 2}}, {"2", {3}}}},
          {"usage", {{"1", {0.1, 0.2, 0.3, 0.4}}}}};
}

TEST(SurgeryPlan, ParsesVersionOne) {
  SurgeryPlan plan = parse_plan(plan_json(), "plan.json");
  EXPECT_EQ(plan.clone.at(0), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(plan.usage.at(1).size(), 4u);
  check_plan_matches(plan, tiny_mixtral());
}

TEST(SurgeryPlan, RejectsOtherModelsAndBadIndices) {
  auto j = plan_json();
  j["model"]["num_experts"] = 8;
  MOEFORGE_EXPECT_ERROR(check_plan_matches(parse_plan(j, "p.json"), tiny_mixtral()), "different model");
  j = plan_json();
  j["clone"]["0"] = {4};
  MOEFORGE_EXPECT_ERROR(check_plan_matches(parse_plan(j, "p.json"), tiny_mixtral()), "names expert 4");
  j = plan_json();
  j["version"] = 2;
  MOEFORGE_EXPECT_ERROR(parse_plan(j, "p.json"), "version 2");
  j = plan_json();
  j["usage"]["1"] = {0.5};
  MOEFORGE_EXPECT_ERROR(check_plan_matches(parse_plan(j, "p.json"), tiny_mixtral()), "has 1 values");
}

TEST(SurgeryPlan, CloneAndLayerLists) {
  std::vector<bool> moe = {true, false, true};
  auto clones = parse_clone_list("*:1,2:0", moe);
  EXPECT_EQ(clones.at(0), (std::vector<int64_t>{1}));
  EXPECT_EQ(clones.at(2), (std::vector<int64_t>{1, 0}));
  MOEFORGE_EXPECT_ERROR(parse_clone_list("1:0", moe), "not a MoE layer");
  MOEFORGE_EXPECT_ERROR(parse_clone_list("x", moe), "LAYER:EXPERT");
  EXPECT_EQ(parse_layer_list("0,3-5", 8, "--layers"), (std::vector<int64_t>{0, 3, 4, 5}));
  MOEFORGE_EXPECT_ERROR(parse_layer_list("7-9", 8, "--layers"), "outside");
}

TEST(SurgeryExtensions, SharedExpertAndSelectionBiasKeys) {
  ModelSpec s = tiny_mixtral({{"moeforge_shared_expert_intermediate_size", 16}, {"moeforge_shared_expert_gate", "learned"},
                              {"moeforge_selection_bias", true}});
  EXPECT_EQ(s.moe.num_shared_experts, 1);
  EXPECT_EQ(s.moe.shared_gate, SharedGateKind::LearnedScale);
  EXPECT_TRUE(s.moe.score_correction_bias);
  EXPECT_EQ(tensor_name(s, TensorRole::SharedUp, 2), "model.layers.2.mlp.shared_expert.up_proj.weight");
  EXPECT_EQ(tensor_name(s, TensorRole::ScoreCorrectionBias, 1), "model.layers.1.mlp.moeforge_selection_bias");
  MOEFORGE_EXPECT_ERROR(tiny_mixtral({{"moeforge_shared_expert_intermediate_size", 16}, {"moeforge_shared_expert_gate", "relu"}}),
                        "moeforge_shared_expert_gate");
}

ExpertWeights random_expert(int64_t F, int64_t H, uint64_t seed) {
  ExpertWeights w;
  w.hidden_size = H;
  w.intermediate_size = F;
  w.gate = normal_floats(F * H, 0, 1, seed);
  w.up = normal_floats(F * H, 0, 1, seed + 1);
  w.down = normal_floats(H * F, 0, 1, seed + 2);
  return w;
}

TEST(SurgeryExpertInit, GranularSlicesPartitionTheFfn) {
  ExpertWeights w = random_expert(8, 4, 1);
  ExpertWeights a = granular_slice(w, 0, 2), b = granular_slice(w, 1, 2);
  EXPECT_EQ(a.intermediate_size, 4);
  EXPECT_EQ(a.gate[0], w.gate[0]);
  EXPECT_EQ(b.gate[0], w.gate[4 * 4]);     // row 4 of gate
  EXPECT_EQ(b.down[0], w.down[4]);         // down[0, 4]
  EXPECT_EQ(b.down[4 + 3], w.down[8 + 7]); // down[1, 7]
  MOEFORGE_EXPECT_ERROR(granular_slice(w, 0, 3), "--granularity");
}

TEST(SurgeryExpertInit, DropReinitialisesTheRequestedFractionOfUnits) {
  ExpertWeights w = random_expert(10, 6, 2), d = w;
  drop_upcycle(d, 0.3, matrix_stats(w), 7);
  int changed_rows = 0;
  for (int64_t f = 0; f < 10; ++f) changed_rows += d.up[f * 6] != w.up[f * 6];
  EXPECT_EQ(changed_rows, 3);
  ExpertWeights again = w;
  drop_upcycle(again, 0.3, matrix_stats(w), 7);
  EXPECT_EQ(again.up, d.up);  // same seed, same result
}

}  // namespace
}  // namespace moeforge::surgery
