// Training building blocks: recipe validation messages, schedules, the load-balancing loss's
// gradient, optimisers, and TensorBoard framing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/router.h"
#include "test_util.h"
#include "train/distill.h"
#include "train/losses.h"
#include "train/optimizer.h"
#include "train/recipe.h"
#include "train/schedule.h"
#include "train/tensorboard.h"

namespace moeforge::train {
namespace {

using nlohmann::json;

json minimal() { return {{"phases", {{{"steps", 10}, {"select", "router"}}}}}; }

TEST(TrainRecipe, DefaultsAndDefaultsMerge) {
  json j = minimal();
  j["defaults"] = {{"optimizer", {{"lr", 5e-5}, {"betas", {0.9, 0.95}}}}, {"seq_len", 64}};
  j["phases"][0]["optimizer"] = {{"weight_decay", 0.1}};
  Recipe r = parse_recipe(j, "r.json");
  ASSERT_EQ(r.phases.size(), 1u);
  const Phase& p = r.phases[0];
  EXPECT_EQ(p.name, "phase0");
  EXPECT_EQ(p.seq_len, 64);
  EXPECT_DOUBLE_EQ(p.optimizer.lr, 5e-5);
  EXPECT_DOUBLE_EQ(p.optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(p.optimizer.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(p.losses.lb_coef, 0.01);
  EXPECT_EQ(p.method, Method::Full);
}

TEST(TrainRecipe, ErrorsNameTheField) {
  auto bad = [](const std::function<void(json&)>& edit, const std::string& msg) {
    json j = minimal();
    j["phases"].push_back({{"steps", 5}, {"select", "router"}});
    edit(j);
    MOEFORGE_EXPECT_ERROR(parse_recipe(j, "recipe.json"), msg);
  };
  bad([](json& j) { j["phases"][1]["optimizer"] = {{"lr", 0}}; }, "recipe.json: phases[1].optimizer.lr: must be > 0");
  bad([](json& j) { j["phases"][0]["stepz"] = 3; }, "recipe.json: phases[0].stepz: unknown field");
  bad([](json& j) { j["phases"][1].erase("select"); }, "recipe.json: phases[1].select: required");
  bad([](json& j) { j["phases"][0]["method"] = "qlora"; }, "phases[0].method: 'qlora' is not one of full, lora");
  bad([](json& j) { j["phases"][0]["lora"] = {{"rank", 0}}; }, "phases[0].lora.rank: must be > 0");
  bad([](json& j) { j["phases"][0]["schedule"] = {{"type", "cosine"}, {"warmup_fraction", 1.5}}; },
      "phases[0].schedule.warmup_fraction: must be in [0, 1)");
  bad([](json& j) { j["phases"][0]["optimizer"] = {{"groups", {{{"select", "router"}, {"lr_scal", 2}}}}}; },
      "phases[0].optimizer.groups[0].lr_scal: unknown field");
  bad([](json& j) { j["checkpoint_every"] = -1; }, "recipe.json: checkpoint_every: must be >= 0");
  bad([](json& j) { j["phases"][0]["steps"] = "ten"; }, "phases[0].steps: must be an integer");
  bad([](json& j) { j["phases"][0]["losses"] = {{"distill", {{"teacher", "x"}, {"top_k", -1}}}}; }, "phases[0].losses.distill.top_k: must be >= 0");
  bad([](json& j) { j["phases"] = json::array(); }, "recipe.json: phases: must be a non-empty list");
}

TEST(TrainSchedule, Shapes) {
  ScheduleOptions s;
  s.kind = ScheduleKind::Cosine;
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(lr_factor(s, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(lr_factor(s, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(s, 10, 100), 1.0);
  EXPECT_NEAR(lr_factor(s, 55, 100), 0.5, 1e-12);
  s.kind = ScheduleKind::Linear;
  EXPECT_NEAR(lr_factor(s, 55, 100), 0.5, 1e-12);
  s.warmup_max_fraction = 0.05;  // short-run cap
  EXPECT_EQ(warmup_steps(s, 100), 5);
  s = ScheduleOptions{};
  s.kind = ScheduleKind::WarmupStableDecay;
  s.warmup_steps = 10;
  s.stable_fraction = 0.2;
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(lr_factor(s, 29, 100), 1.0);
  EXPECT_NEAR(lr_factor(s, 30, 100), 1.0, 1e-12);
  EXPECT_NEAR(lr_factor(s, 99, 100), 0.1, 1e-3);
  s.kind = ScheduleKind::InverseSqrt;
  EXPECT_NEAR(lr_factor(s, 40, 100), 0.5, 1e-12);  // 1 / sqrt((40 - 10 + 10) / 10)
}

TEST(TrainLosses, LoadBalancingGradientBalancesACollapsedRouter) {
  torch::manual_seed(0);
  const int64_t N = 256, H = 16, E = 4;
  auto x = torch::randn({N, H}) + 1.0;                       // positive mean: a router row along ones dominates
  auto w = torch::randn({E, H}) * 0.01;
  w[0] = torch::ones({H}) * 0.5;                              // collapsed: expert 0 wins for almost every token
  w.requires_grad_(true);
  model::RouterOptions ro;
  ro.top_k = 1;
  auto real = torch::ones({N}, torch::kBool);
  auto step_loss = [&](bool backward) {
    model::LayerRouting lr;
    lr.logits = torch::mm(x, w.t());
    lr.routing = model::route(lr.logits, ro);
    auto losses = router_losses({lr}, real, E);
    if (backward) losses.lb.backward();
    return std::make_pair(losses.lb.item<double>(), losses.counts[0][0].item<int64_t>());
  };
  auto [lb0, count0] = step_loss(true);
  ASSERT_TRUE(w.grad().defined());
  EXPECT_GT(w.grad().abs().sum().item<double>(), 0.0);  // the LB loss reaches the router
  EXPECT_GT(count0, N * 9 / 10);
  OptimizerOptions oo;
  oo.lr = 0.05;
  Optimizer opt(oo);
  std::vector<Leaf> leaves = {{"router", w, 1.0, 0.0}};
  opt.step(leaves, oo.lr);
  for (int i = 0; i < 30; ++i) {
    w.mutable_grad() = torch::Tensor();
    step_loss(true);
    opt.step(leaves, oo.lr);
  }
  w.mutable_grad() = torch::Tensor();
  auto [lb1, count1] = step_loss(false);
  EXPECT_LT(lb1, lb0);
  EXPECT_LT(count1, count0 * 2 / 3) << "expert 0 still takes " << count1 << " of " << N;
}

TEST(TrainLosses, MaskedCrossEntropyAndZLoss) {
  auto ids = torch::tensor({{1, 2, 3}}, torch::kInt64);
  auto mask = torch::tensor({{0.f, 1.f, 0.f}});
  // Zero hidden states through any head: zero logits over 5 ids.
  auto hidden = torch::zeros({1, 3, 4});
  auto head = chunked_head_loss(hidden, torch::randn({5, 4}), ids, mask, nullptr, HeadLossOptions{});
  EXPECT_NEAR(head.stats.ce_sum, std::log(5.0), 1e-6);  // only position 1 is a target
  EXPECT_EQ(head.stats.targets, 1);
  model::LayerRouting lr;
  lr.logits = torch::zeros({2, 4});
  lr.routing = model::route(lr.logits, model::RouterOptions{});
  auto r = router_losses({lr}, torch::ones({2}, torch::kBool), 4);
  EXPECT_NEAR(r.z.item<double>(), std::pow(std::log(4.0), 2), 1e-5);
  EXPECT_NEAR(r.lb.item<double>(), 1.0, 1e-6);  // uniform probabilities: L = 1
  EXPECT_DOUBLE_EQ(balance(torch::tensor({5, 5, 5, 5})), 1.0);
}

TEST(TrainOptimizer, AdamWMatchesTorchOptimAdamW) {
  // Per-leaf lr scale and weight decay; a contiguous leaf (fused kernel) and a transposed one (unfused path).
  OptimizerOptions o;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.eps = 1e-6;
  Optimizer ours(o);
  torch::manual_seed(0);
  auto a = torch::randn({6, 5}).requires_grad_(true);
  auto b = torch::randn({5, 7}).t().clone().requires_grad_(true);  // [7, 5], strides of a transpose
  ASSERT_FALSE(b.is_contiguous());
  auto a_ref = a.detach().clone().requires_grad_(true), b_ref = b.detach().clone().requires_grad_(true);
  const auto a0 = a.detach().clone();
  std::vector<Leaf> leaves = {{"a", a, 1.0, 0.1}, {"b", b, 0.5, 0.0}};
  const double lr = 1e-2;
  torch::optim::AdamW ref_a({a_ref}, torch::optim::AdamWOptions(lr).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1));
  torch::optim::AdamW ref_b({b_ref}, torch::optim::AdamWOptions(lr * 0.5).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.0));
  for (int step = 0; step < 6; ++step) {
    auto ga = torch::randn({6, 5}), gb = torch::randn({7, 5});
    a.mutable_grad() = ga.clone();
    b.mutable_grad() = gb.clone();
    a_ref.mutable_grad() = ga.clone();
    b_ref.mutable_grad() = gb.clone();
    ours.step(leaves, lr);
    ref_a.step();
    ref_b.step();
  }
  EXPECT_TRUE(torch::allclose(a.detach(), a_ref.detach(), 1e-6, 1e-6)) << (a - a_ref).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(b.detach(), b_ref.detach(), 1e-6, 1e-6)) << (b - b_ref).abs().max().item<double>();
  EXPECT_GT((a.detach() - a0).abs().min().item<double>(), 1e-3);  // every weight moved
}

TEST(TrainOptimizer, AdafactorFactoredUpdateMovesAgainstTheGradient) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Adafactor;
  o.eps = 1e-30;
  o.beta1 = 0.0;
  Optimizer opt(o);
  auto p = torch::ones({3, 4, 5}).requires_grad_(true);
  p.mutable_grad() = torch::ones({3, 4, 5});
  std::vector<Leaf> leaves = {{"p", p, 1.0, 0.0}};
  opt.step(leaves, 0.1);
  EXPECT_TRUE(torch::allclose(p.detach(), torch::full({3, 4, 5}, 0.9)));
  auto state = opt.state();
  EXPECT_EQ(state.at("p.exp_avg_sq_row").sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(state.at("p.exp_avg_sq_col").sizes(), (std::vector<int64_t>{3, 5}));
}

TEST(TrainTensorBoard, Crc32cKnownAnswer) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32c(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0xE3069283u);
}

}  // namespace
}  // namespace moeforge::train
