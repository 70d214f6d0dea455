// Distillation: the divergences against their definitions, the top-K + tail buckets, the chunked
// head's values and gradients against plain autograd on the dense [tokens, vocab] logits, router KD,
// recipe validation, and whole runs (KD pulls a student to its teacher; vocabularies and tokenizers checked).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <random>

#include "test_util.h"
#include "io/checkpoint_store.h"
#include "train/distill.h"
#include "train/distill_kernel.h"
#include "train/recipe.h"
#include "train/teacher.h"
#include "train_test_support.h"

namespace moeforge::train {
namespace {

using nlohmann::json;

torch::Tensor logp(int64_t n, int64_t v, int64_t seed, double scale = 2.0) {
  torch::manual_seed(seed);
  return torch::log_softmax(torch::randn({n, v}, torch::kFloat64) * scale, 1);
}

torch::Tensor kl_ref(const torch::Tensor& a, const torch::Tensor& b) { return (a.exp() * (a - b)).sum(1); }

TEST(DistillDivergence, MatchesDefinitions) {
  auto P = logp(5, 11, 1), Q = logp(5, 11, 2);
  EXPECT_TRUE(torch::allclose(divergence(P, Q, KdDivergence::ForwardKl, 0.5), kl_ref(P, Q)));
  EXPECT_TRUE(torch::allclose(divergence(P, Q, KdDivergence::ReverseKl, 0.5), kl_ref(Q, P)));
  // TRL: beta 0 is forward KL, beta 1 reverse KL; otherwise beta KL(P||M) + (1-beta) KL(Q||M), M = beta P + (1-beta) Q.
  EXPECT_TRUE(torch::allclose(divergence(P, Q, KdDivergence::Jsd, 0.0), kl_ref(P, Q)));
  EXPECT_TRUE(torch::allclose(divergence(P, Q, KdDivergence::Jsd, 1.0), kl_ref(Q, P)));
  const double beta = 0.3;
  auto M = (beta * P.exp() + (1 - beta) * Q.exp()).log();
  auto jsd = beta * kl_ref(P, M) + (1 - beta) * kl_ref(Q, M);
  EXPECT_TRUE(torch::allclose(divergence(P, Q, KdDivergence::Jsd, beta), jsd));
  EXPECT_GT(jsd.min().item<double>(), 0.0);
  EXPECT_LT(jsd.max().item<double>(), std::log(2.0) + 1e-9);  // a JSD is bounded by log 2
  for (auto kind : {KdDivergence::ForwardKl, KdDivergence::ReverseKl, KdDivergence::Jsd})
    EXPECT_LT(divergence(P, P, kind, 0.5).abs().max().item<double>(), 1e-12);
}

TEST(DistillDivergence, BucketsKeepTheMassAndNeverExceedTheFullKl) {
  auto P = logp(6, 40, 3), Q = logp(6, 40, 4);
  auto ids = std::get<1>(P.topk(7, 1));
  auto Pb = bucketed_logp(P, ids), Qb = bucketed_logp(Q, ids);
  ASSERT_EQ(Pb.size(1), 8);
  EXPECT_TRUE(torch::allclose(Pb.exp().sum(1), torch::ones({6}, torch::kFloat64)));
  // Coarse-graining can only lose divergence (data processing), and loses none at K = V.
  auto full = kl_ref(P, Q), top = divergence(Pb, Qb, KdDivergence::ForwardKl, 0);
  EXPECT_TRUE((top <= full + 1e-12).all().item<bool>());
  auto all = std::get<1>(P.topk(40, 1));
  EXPECT_TRUE(torch::allclose(divergence(bucketed_logp(P, all), bucketed_logp(Q, all), KdDivergence::ForwardKl, 0), full,
                              1e-6, 1e-9));
}

struct HeadCase {
  int64_t B = 2, T = 7, H = 8, V = 23;
  torch::Tensor h, W, ids, mask, th, tW;
  HeadCase() {
    torch::manual_seed(11);
    h = torch::randn({B, T, H}, torch::kFloat64).requires_grad_(true);
    W = (torch::randn({V, H}, torch::kFloat64) * 0.5).requires_grad_(true);
    ids = torch::randint(0, V, {B, T}, torch::kInt64);
    mask = torch::ones({B, T}, torch::kFloat64);
    mask.index_put_({0, 0}, 0.0);
    mask.index_put_({1, 0}, 0.0);
    mask.index_put_({1, 5}, 0.0);  // a masked target
    mask.index_put_({1, 6}, 0.0);
    th = torch::randn({B * T, H}, torch::kFloat64);
    tW = torch::randn({V + 3, H}, torch::kFloat64) * 0.5;  // the teacher's vocabulary padded by 3
  }
  // The dense reference: [tokens, vocab] logits, losses by their formulas, plain autograd.
  std::pair<double, double> reference(const HeadLossOptions& o) const {
    auto logits = torch::matmul(h, W.t()).narrow(1, 0, T - 1).reshape({-1, V});
    auto tl = torch::matmul(th.reshape({B, T, H}), tW.t()).narrow(1, 0, T - 1).reshape({-1, V + 3}).narrow(1, 0, V);
    auto tgt = ids.narrow(1, 1, T - 1).reshape({-1});
    auto w = mask.narrow(1, 1, T - 1).reshape({-1});
    auto ce = (-torch::log_softmax(logits, 1).gather(1, tgt.unsqueeze(1)).squeeze(1) * w).sum();
    auto P = torch::log_softmax(tl / o.temperature, 1), Q = torch::log_softmax(logits / o.temperature, 1);
    torch::Tensor kd_rows;
    if (o.top_k > 0) {
      auto top = std::get<1>(tl.topk(o.top_k, 1));
      kd_rows = divergence(bucketed_logp(P, top), bucketed_logp(Q, top), o.divergence, o.beta);
    } else {
      kd_rows = divergence(P, Q, o.divergence, o.beta);
    }
    auto kd = (kd_rows * w).sum() * (o.temperature * o.temperature);
    (o.scale * (o.ce_coef * ce + o.kd_coef * kd)).backward();
    return {ce.item<double>(), kd.item<double>()};
  }
};

void expect_head_matches(HeadLossOptions o) {
  HeadCase c;
  auto [ce, kd] = c.reference(o);
  auto gh = c.h.grad().clone(), gW = c.W.grad().clone();
  c.h.mutable_grad() = torch::Tensor();
  c.W.mutable_grad() = torch::Tensor();
  TeacherTokens t;
  t.hidden_NH = c.th;
  t.lm_head_VH = c.tW;
  o.kd_vocab = c.V;
  auto r = chunked_head_loss(c.h, c.W, c.ids, c.mask, &t, o);
  torch::autograd::backward({r.rows}, {r.rows_grad});
  EXPECT_EQ(r.stats.targets, 6 + 4);  // row 0: 6 targets; row 1: two masked
  EXPECT_NEAR(r.stats.ce_sum, ce, 1e-9);
  EXPECT_NEAR(r.stats.kd_sum, kd, 1e-9);
  EXPECT_TRUE(torch::allclose(c.h.grad(), gh, 1e-7, 1e-10)) << (c.h.grad() - gh).abs().max();
  EXPECT_TRUE(torch::allclose(c.W.grad(), gW, 1e-7, 1e-10)) << (c.W.grad() - gW).abs().max();
}

TEST(DistillHead, ChunkedValuesAndGradientsEqualDenseAutograd) {
  HeadLossOptions o;
  o.ce_coef = 0.7;
  o.kd_coef = 0.4;
  o.scale = 1.0 / 11;
  o.temperature = 2.0;
  o.chunk_tokens = 3;  // four chunks, the last one short
  expect_head_matches(o);
  o.divergence = KdDivergence::ReverseKl;
  expect_head_matches(o);
  o.divergence = KdDivergence::Jsd;
  o.beta = 0.25;
  o.top_k = 5;
  expect_head_matches(o);
  o.divergence = KdDivergence::ForwardKl;
  o.chunk_tokens = 0;  // automatic: one chunk
  expect_head_matches(o);
}

TEST(DistillHead, StudentEqualToTeacherHasNoKdAndAgreesEverywhere) {
  HeadCase c;
  TeacherTokens t;
  t.hidden_NH = c.h.detach().reshape({-1, c.H});
  t.lm_head_VH = c.W.detach();
  HeadLossOptions o;
  o.ce_coef = 0;
  o.kd_coef = 1;
  o.temperature = 3;
  auto r = chunked_head_loss(c.h, c.W, c.ids, c.mask, &t, o);
  torch::autograd::backward({r.rows}, {r.rows_grad});
  EXPECT_LT(std::abs(r.stats.kd_sum), 1e-10);
  EXPECT_LT(std::abs(r.stats.kl_sum), 1e-10);
  EXPECT_EQ(r.stats.agree, r.stats.targets);
  EXPECT_LT(c.h.grad().abs().max().item<double>(), 1e-10);
  EXPECT_LT(c.W.grad().abs().max().item<double>(), 1e-10);
}

TEST(DistillHead, OfflineTopKEqualsOnlineTopKAtTemperatureOne) {
  // A cache holds the teacher's top-K log-probabilities at T = 1 and the tail; at T = 1 the loss equals the online top-K loss.
  HeadCase c;
  auto tl = torch::matmul(c.th, c.tW.t()).narrow(1, 0, c.V);  // [B*T, V]
  auto lp = torch::log_softmax(tl, 1);
  auto top = lp.topk(6, 1);
  TeacherTokens cache;
  cache.top_ids_NK = std::get<1>(top);
  cache.top_logp_NK = std::get<0>(top).to(torch::kFloat32);
  cache.tail_logp_N = bucketed_logp(lp, cache.top_ids_NK).select(1, 6).to(torch::kFloat32);
  HeadLossOptions o;
  o.kd_coef = 1;
  o.top_k = 6;
  o.kd_vocab = c.V;
  TeacherTokens online;
  online.hidden_NH = c.th;
  online.lm_head_VH = c.tW;
  auto a = chunked_head_loss(c.h, c.W, c.ids, c.mask, &online, o);
  auto b = chunked_head_loss(c.h.detach(), c.W.detach(), c.ids, c.mask, &cache, o);
  EXPECT_NEAR(a.stats.kd_sum, b.stats.kd_sum, 1e-5);
  EXPECT_EQ(a.stats.agree, b.stats.agree);
}

// The fused fp32 CPU kernel (distill_kernel.h) against the torch-op path run in fp64, on a vocabulary
// long enough for its vector loops: CE alone, the online teacher and a cache's buckets, at T = 1 and
// T = 2, with and without a padded student vocabulary (columns past kd_vocab in the CE only).
struct KernelCase {
  int64_t B = 2, T = 9, H = 16, V = 2500, K = 37;
  torch::Tensor h, W, ids, mask, th, tW;
  KernelCase() {
    torch::manual_seed(21);
    h = torch::randn({B, T, H}, torch::kFloat64);
    W = torch::randn({V, H}, torch::kFloat64) * 0.6;
    ids = torch::randint(0, V - 100, {B, T}, torch::kInt64);
    mask = torch::ones({B, T}, torch::kFloat64);
    mask.index_put_({1, 3}, 0.0);
    mask.index_put_({0, 6}, 0.5);  // a weighted target
    th = torch::randn({B * T, H}, torch::kFloat64);
    tW = torch::randn({V + 7, H}, torch::kFloat64) * 0.8;
  }
  struct Out {
    HeadLossStats stats;
    torch::Tensor gh, gW;
  };
  Out run(torch::Dtype dtype, const std::string& teacher, HeadLossOptions o) const {
    auto hh = h.to(dtype).clone().requires_grad_(true), WW = W.to(dtype).clone().requires_grad_(true);
    TeacherTokens t;
    if (teacher == "online") {
      t.hidden_NH = th.to(dtype);
      t.lm_head_VH = tW.to(dtype);
    } else if (teacher == "cache") {
      auto lp = torch::log_softmax(torch::matmul(th, tW.t()).narrow(1, 0, o.kd_vocab), 1);
      auto top = lp.topk(K, 1);
      t.top_ids_NK = std::get<1>(top);
      t.top_logp_NK = std::get<0>(top).to(torch::kFloat32);
      t.tail_logp_N = bucketed_logp(lp, t.top_ids_NK).select(1, K).to(torch::kFloat32);
    }
    auto r = chunked_head_loss(hh, WW, ids, mask.to(dtype), teacher.empty() ? nullptr : &t, o);
    torch::autograd::backward({r.rows}, {r.rows_grad});
    return {r.stats, hh.grad().to(torch::kFloat64), WW.grad().to(torch::kFloat64)};
  }
};

TEST(DistillKernel, FusedFp32EqualsTheTorchOpsInFp64) {
  KernelCase c;
  for (const std::string teacher : {"", "online", "cache"})
    for (double temperature : {1.0, 2.0})
      for (int64_t kd_vocab : {c.V, c.V - 100}) {
        HeadLossOptions o;
        o.ce_coef = 0.7;
        o.kd_coef = teacher.empty() ? 0.0 : 0.4;
        o.scale = 1.0 / 17;
        o.temperature = temperature;
        o.kd_vocab = kd_vocab;
        o.chunk_tokens = 5;  // several chunks, the last one short
        const auto ref = c.run(torch::kFloat64, teacher, o), got = c.run(torch::kFloat32, teacher, o);
        const std::string what = "teacher '" + teacher + "' T " + std::to_string(temperature) + " kd_vocab " + std::to_string(kd_vocab);
        EXPECT_NEAR(got.stats.ce_sum, ref.stats.ce_sum, 1e-5 * std::abs(ref.stats.ce_sum)) << what;
        EXPECT_NEAR(got.stats.kd_sum, ref.stats.kd_sum, 1e-4 * std::abs(ref.stats.kd_sum) + 1e-6) << what;
        EXPECT_NEAR(got.stats.kl_sum, ref.stats.kl_sum, 1e-4 * std::abs(ref.stats.kl_sum) + 1e-6) << what;
        EXPECT_EQ(got.stats.agree, ref.stats.agree) << what;
        EXPECT_EQ(got.stats.targets, ref.stats.targets) << what;
        if (!teacher.empty()) EXPECT_GT(ref.stats.kd_sum, 0.01) << what;
        const double gh = (got.gh - ref.gh).abs().max().item<double>() / ref.gh.abs().max().item<double>();
        const double gW = (got.gW - ref.gW).abs().max().item<double>() / ref.gW.abs().max().item<double>();
        EXPECT_LT(gh, 2e-5) << what;
        EXPECT_LT(gW, 2e-5) << what;
      }
}

TEST(DistillKernel, CacheTopLogProbsAndTailEqualTheTorchOps) {
  torch::manual_seed(8);
  const int64_t m = 6, V = 3001, K = 40;
  auto buffer = torch::randn({m, V + 9}) * 3;  // rows wider than the compared columns (a padded vocabulary)
  auto z = buffer.narrow(1, 0, V);
  auto top = z.topk(K, 1);
  auto values = std::get<0>(top).contiguous(), ids = std::get<1>(top).contiguous();
  auto logp = torch::empty({m, K}), tail = torch::empty({m});
  fused_top_logp_and_tail(buffer.data_ptr<float>(), m, V, buffer.stride(0), ids.data_ptr<int64_t>(), values.data_ptr<float>(), K,
                          logp.data_ptr<float>(), tail.data_ptr<float>());
  auto ref = torch::log_softmax(z.to(torch::kFloat64), 1);
  auto want_top = ref.gather(1, ids);
  auto want_tail = bucketed_logp(ref, ids).select(1, K);
  EXPECT_LT((logp.to(torch::kFloat64) - want_top).abs().max().item<double>(), 1e-5);
  EXPECT_LT((tail.to(torch::kFloat64) - want_tail).abs().max().item<double>(), 1e-5);
  // K = V: no tail.
  auto all = torch::randn({2, 5});
  auto t5 = all.topk(5, 1);
  auto v5 = std::get<0>(t5).contiguous(), i5 = std::get<1>(t5).contiguous();
  auto lp5 = torch::empty({2, 5}), tail5 = torch::empty({2});
  fused_top_logp_and_tail(all.data_ptr<float>(), 2, 5, 5, i5.data_ptr<int64_t>(), v5.data_ptr<float>(), 5, lp5.data_ptr<float>(),
                          tail5.data_ptr<float>());
  EXPECT_TRUE(std::isinf(tail5[0].item<float>()) && tail5[0].item<float>() < 0);
  EXPECT_NEAR(lp5.exp().sum(1)[1].item<double>(), 1.0, 1e-6);
}

TEST(DistillRouter, KlOfSoftenedRouterLogits) {
  torch::manual_seed(5);
  model::LayerRouting s0, s1, t0, t1;
  s0.logits = torch::randn({6, 4}).requires_grad_(true);
  s1.logits = torch::randn({6, 4});
  t0.logits = torch::randn({6, 4});
  t1.logits = s1.logits.clone();
  auto real = torch::tensor({1, 1, 1, 1, 0, 0}, torch::kBool);
  std::vector<double> layers;
  auto v = router_kd({s0, s1}, {t0, t1}, real, 4.0, &layers);
  auto P = torch::log_softmax(t0.logits / 4, 1), Q = torch::log_softmax(s0.logits.detach() / 4, 1);
  auto expect = kl_ref(P, Q).narrow(0, 0, 4).mean().item<double>() * 16 / 2;  // layer 1 contributes 0
  EXPECT_NEAR(v.item<double>(), expect, 1e-5);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_NEAR(layers[0], 2 * expect, 1e-5);
  EXPECT_NEAR(layers[1], 0.0, 1e-6);
  v.backward();
  EXPECT_GT(s0.logits.grad().narrow(0, 0, 4).abs().sum().item<double>(), 0);
  EXPECT_EQ(s0.logits.grad().narrow(0, 4, 2).abs().sum().item<double>(), 0);  // padding tokens get none
  MOEFORGE_EXPECT_ERROR(router_kd({s0, s1}, {t0}, real, 4.0), "the student has 2 MoE layers, the teacher 1");
}

json distill_recipe(json distill) {
  return {{"phases", {{{"steps", 10}, {"select", "router"}, {"losses", {{"distill", distill}}}}}}};
}

TEST(DistillRecipe, FieldsAndErrors) {
  Recipe r = parse_recipe(distill_recipe({{"teacher", "t"},
                                          {"divergence", "jsd"},
                                          {"beta", 0.2},
                                          {"temperature", {{"start", 4}, {"end", 1}}},
                                          {"ce_weight", 0.5},
                                          {"router_weight", 0.1},
                                          {"top_k", 64}}),
                          "r.json");
  const DistillOptions& d = r.phases[0].losses.distill;
  EXPECT_TRUE(d.enabled);
  EXPECT_EQ(d.divergence, KdDivergence::Jsd);
  EXPECT_DOUBLE_EQ(d.beta, 0.2);
  EXPECT_DOUBLE_EQ(d.temperature.at(0, 10), 4.0);
  EXPECT_DOUBLE_EQ(d.temperature.at(9, 10), 1.0);
  EXPECT_DOUBLE_EQ(d.temperature.at(3, 10), 3.0);
  EXPECT_DOUBLE_EQ(d.ce_weight.at(5, 10), 0.5);
  EXPECT_EQ(d.top_k, 64);
  auto bad = [](json distill, const std::string& msg) { MOEFORGE_EXPECT_ERROR(parse_recipe(distill_recipe(distill), "r.json"), msg); };
  bad({{"beta", 0.5}}, "r.json: phases[0].losses.distill.beta: only used with \"divergence\": \"jsd\"");
  bad({{"temperature", 0}}, "phases[0].losses.distill.temperature: must be > 0");
  bad({{"temperature", {{"start", 2}}}}, "phases[0].losses.distill.temperature: must be a number or {\"start\": a, \"end\": b}");
  bad({{"divergence", "kl"}}, "phases[0].losses.distill.divergence: 'kl' is not one of forward_kl, reverse_kl, jsd");
  bad({{"weight", -1}}, "phases[0].losses.distill.weight: must be >= 0");
  bad({{"temprature", 2}}, "phases[0].losses.distill.temprature: unknown field");
  bad({{"teacher", "a"}, {"teacher_cache", "b"}}, "give \"teacher\" or \"teacher_cache\", not both");
  MOEFORGE_EXPECT_ERROR(parse_recipe({{"phases", {{{"steps", 1}, {"select", "router"}, {"losses", {{"distill", 3}}}}}}}, "r.json"),
                        "phases[0].losses.distill: must be an object");
  MOEFORGE_EXPECT_ERROR(parse_recipe({{"phases", {{{"steps", 1}, {"select", "router"}, {"sfa", {{"alpha", 1.0}}}}}}}, "r.json"),
                        "phases[0].sfa.alpha: must be in [0, 1)");
}

// Whole runs on tiny Mixtrals sharing one tokenizer.
class DistillRun : public test::TinyMixtralSuite {};


TEST_F(DistillRun, KdPullsTheStudentToTheTeacher) {
  auto teacher = fx->model("teacher", "mixtral", {{"vocab_size", 320}}, /*seed=*/9);  // padded vocabulary: accepted, tail left out
  json phase = {{"steps", 12},
                {"select", "all"},
                {"optimizer", {{"lr", 3e-3}}},
                {"losses", {{"distill", {{"teacher", teacher.string()}, {"ce_weight", 0}, {"temperature", 2}, {"router_weight", 0.5}}}}}};
  auto o = fx->options(mixtral, test::TrainFixture::recipe(phase, {{"log_every", 1}}), "kd");
  o.data_spec = fx->one_block_data().string();  // the same batch at every step: its KL must fall
  train::Trainer trainer(o);
  ASSERT_TRUE(trainer.run().finished);
  auto m = test::read_metrics(o.out_dir);
  ASSERT_EQ(m.size(), 12u);
  for (const char* key : {"kd", "kl", "agreement", "router_kd", "router_kd_per_layer"}) ASSERT_TRUE(m.front().contains(key)) << key;
  const auto& per_layer = m.front()["router_kd_per_layer"];
  ASSERT_EQ(per_layer.size(), 2u);  // the tiny Mixtral's two MoE layers; their mean is router_kd
  EXPECT_NEAR((per_layer[0].get<double>() + per_layer[1].get<double>()) / 2, m.front()["router_kd"].get<double>(), 1e-6);
  EXPECT_LT(m.back()["kl"].get<double>(), 0.7 * m.front()["kl"].get<double>());
  EXPECT_LT(m.back()["router_kd"].get<double>(), m.front()["router_kd"].get<double>());
  // loss = ce_weight 0 * ce + kd + router_weight * router_kd + lb + z
  const auto& first = m.front();
  EXPECT_NEAR(first["loss"].get<double>(),
              first["kd"].get<double>() + 0.5 * first["router_kd"].get<double>() + 0.01 * first["lb"].get<double>() +
                  0.001 * first["z"].get<double>(),
              1e-5);
  auto run = read_json_file(o.out_dir / "run.json");
  EXPECT_EQ(run["teacher"].get<std::string>(), std::filesystem::absolute(teacher).string());
}

TEST_F(DistillRun, InterruptedDistillationResumesExactly) {
  auto teacher = fx->model("teacher2", "mixtral", {{"num_local_experts", 4}}, /*seed=*/9);
  json phase = {{"steps", 4}, {"select", "experts"}, {"sfa", {{"every", 1}}},
                {"losses", {{"distill", {{"teacher", teacher.string()}, {"weight", {{"start", 1}, {"end", 0.5}}}, {"top_k", 8}}}}}};
  json recipe = test::TrainFixture::recipe(phase, {{"checkpoint_every", 1}});
  train::Trainer straight(fx->options(mixtral, recipe, "kd-straight"));
  ASSERT_TRUE(straight.run().finished);
  auto resumed = test::interrupted_then_resumed(*fx, mixtral, recipe, "kd-resumed", 2);
  EXPECT_EQ(test::file_bytes(fx->tmp / "kd-straight" / "trainable.safetensors"),
            test::file_bytes(fx->tmp / "kd-resumed" / "trainable.safetensors"));
}

TEST_F(DistillRun, SfaAveragesTheTrainedTensors) {
  // With alpha 0 SFA is a no-op; with alpha > 0 the result differs and lies between.
  auto run = [&](double alpha, const std::string& name) {
    json phase = {{"steps", 3}, {"select", "router"}, {"sfa", {{"alpha", alpha}, {"every", 1}}}};
    auto o = fx->options(mixtral, test::TrainFixture::recipe(phase), name);
    train::Trainer t(o);
    EXPECT_TRUE(t.run().finished);
    return test::file_bytes(o.out_dir / "trainable.safetensors");
  };
  json plain_phase = {{"steps", 3}, {"select", "router"}};
  auto o = fx->options(mixtral, test::TrainFixture::recipe(plain_phase), "no-sfa");
  train::Trainer plain(o);
  ASSERT_TRUE(plain.run().finished);
  EXPECT_EQ(run(0.0, "sfa0"), test::file_bytes(o.out_dir / "trainable.safetensors"));
  EXPECT_NE(run(0.5, "sfa5"), test::file_bytes(o.out_dir / "trainable.safetensors"));
}

TEST_F(DistillRun, TeachersThatDoNotShareTheTokenizerAreRefusedBeforeTraining) {
  auto small = fx->model("teacher-small-vocab", "mixtral", {{"vocab_size", 290}});
  json phase = {{"steps", 1}, {"select", "router"}, {"losses", {{"distill", {{"teacher", small.string()}}}}}};
  {
    train::Trainer t(fx->options(mixtral, test::TrainFixture::recipe(phase), "bad-vocab"));
    MOEFORGE_EXPECT_ERROR(t.run(), "vocabulary 290 vs the student's");
  }
  // Another tokenizer in the teacher's directory.
  init::BpeTrainOptions bo;
  bo.vocab_size = 280;
  auto other = fx->model("teacher-other-tok", "mixtral");
  init::write_tokenizer(other, init::train_bpe({"completely different words here", "other text entirely"}, bo), bo);
  phase["losses"]["distill"]["teacher"] = other.string();
  {
    train::Trainer t(fx->options(mixtral, test::TrainFixture::recipe(phase), "bad-tok"));
    MOEFORGE_EXPECT_ERROR(t.run(), "its tokenizer is not the student's");
  }
  phase["losses"]["distill"]["teacher"] = (fx->tmp / "missing").string();
  train::Trainer t(fx->options(mixtral, test::TrainFixture::recipe(phase), "no-teacher"));
  MOEFORGE_EXPECT_ERROR(t.run(), "no such model directory");
  EXPECT_FALSE(std::filesystem::exists(fx->tmp / "no-teacher" / "run.json"));
}


}  // namespace
}  // namespace moeforge::train
