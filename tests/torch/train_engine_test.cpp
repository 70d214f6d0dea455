// Training engine end to end on tiny models: selectors freeze exactly what they say, force_route,
// LoRA on one expert, merge-deltas, exact resume, probe messages and the loss going down.
#include <gtest/gtest.h>

#include "io/checkpoint_store.h"
#include "train/export.h"
#include "train/optimizer.h"
#include "train/run_checkpoint.h"
#include "train/trainable.h"
#include "train_test_support.h"

namespace moeforge::test {
namespace {

using nlohmann::json;

// Which canonical tensors (and which experts of stacked ones) differ between two snapshots.
std::map<std::string, std::vector<int64_t>> changed_units(const std::map<std::string, torch::Tensor>& a,
                                                          const std::map<std::string, torch::Tensor>& b) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, t] : a) {
    const auto& u = b.at(name);
    if (name.find(".experts.") != std::string::npos) {
      for (int64_t e = 0; e < t.size(0); ++e)
        if (!torch::equal(t[e], u[e])) out[name].push_back(e);
    } else if (!torch::equal(t, u)) {
      out[name].push_back(-1);
    }
  }
  return out;
}

std::string describe(const std::map<std::string, std::vector<int64_t>>& m) {
  std::string s;
  for (const auto& [n, es] : m) {
    s += n + "[";
    for (auto e : es) s += std::to_string(e) + " ";
    s += "] ";
  }
  return s;
}

class TrainEngine : public TinyMixtralSuite {};

TEST_F(TrainEngine, EachSelectorChangesExactlyWhatItSelects) {
  auto base = model::Transformer::load(mixtral);
  auto before = snapshot(base->weights());
  struct Case {
    std::string select;
    std::vector<std::string> expect;  // name[:experts]
  };
  const std::vector<Case> cases = {
      {"router", {"layers.0.router", "layers.1.router"}},
      {"experts=1:2", {"layers.1.experts.w_in:2", "layers.1.experts.w_out:2"}},
      {"norms - layers=0-0", {"layers.1.attn_norm", "layers.1.ffn_norm", "final_norm"}},
      {"attention & layers=1", {"layers.1.q", "layers.1.k", "layers.1.v", "layers.1.o"}},
      {"embeddings + lm_head", {"embed", "lm_head"}},
      {"layers.*.o", {"layers.0.o", "layers.1.o"}},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.select);
    json phase = {{"select", c.select}, {"routing", {{"force_route", c.select.find("experts") != std::string::npos ? "selected" : ""}}}};
    train::Trainer trainer(fx->options(mixtral, TrainFixture::recipe(phase), "sel" + std::to_string(i++)));
    trainer.run();
    auto after = snapshot(trainer.model().weights());
    auto got = changed_units(before, after);
    std::map<std::string, std::vector<int64_t>> want;
    for (const auto& e : c.expect) {
      auto colon = e.find(':');
      if (colon == std::string::npos) want[e].push_back(-1);
      else want[e.substr(0, colon)].push_back(std::stoll(e.substr(colon + 1)));
    }
    EXPECT_EQ(got, want) << "got " << describe(got);
    // Nothing but the selected tensors requires grad once training is over.
    model::for_each_parameter(trainer.model().weights(), [](const std::string& n, torch::Tensor& t) {
      EXPECT_FALSE(t.requires_grad()) << n;
    });
  }
}

TEST_F(TrainEngine, FrozenTensorsHaveNoGradientOrOptimizerState) {
  auto m = model::Transformer::load(mixtral);
  train::SelectorContext ctx{&m->spec(), train::describe_parameters(m->spec()), nullptr};
  auto sel = train::resolve_selection({"experts=1:1,1:3", "router"}, ctx, "test");
  train::TrainableOptions topts;
  train::TrainableSet set(m->weights(), m->spec(), sel, topts);
  std::vector<std::string> leaves;
  for (const auto& l : set.leaves()) leaves.push_back(l.name);
  EXPECT_EQ(leaves, (std::vector<std::string>{"layers.0.router", "layers.1.experts.w_in.slice", "layers.1.experts.w_out.slice",
                                              "layers.1.router"}));
  EXPECT_EQ(set.leaves()[1].tensor.size(0), 2);  // only experts 1 and 3 have a trainable slice (and optimiser state)
  auto ids = torch::randint(0, m->spec().vocab_size, {2, 8}, torch::kInt64);
  auto out = m->forward_with(set.effective_weights(), ids, {});
  out.logits.sum().backward();
  int with_grad = 0;
  model::for_each_parameter(m->weights(), [&](const std::string& n, torch::Tensor& t) {
    if (t.grad().defined()) ++with_grad;
    if (n.find("router") == std::string::npos) EXPECT_FALSE(t.requires_grad()) << n;
  });
  EXPECT_EQ(with_grad, 2);  // the two routers
  train::Optimizer opt(train::OptimizerOptions{});
  opt.step(set.leaves(), 1e-3);
  for (const auto& [slot, t] : opt.state())
    EXPECT_TRUE(slot.find("router") != std::string::npos || slot.find(".slice.") != std::string::npos) << slot;
}

TEST_F(TrainEngine, ForceRouteSendsTokensToTheChosenExpert) {
  json phase = {{"select", "experts=1:3"}, {"routing", {{"force_route", "selected"}}}, {"steps", 1}};
  train::Trainer trainer(fx->options(mixtral, TrainFixture::recipe(phase), "force"));
  trainer.run();
  std::ifstream in(fx->tmp / "force" / "metrics.jsonl");
  std::string line;
  std::getline(in, line);
  auto rec = json::parse(line);
  EXPECT_NEAR(rec["load"][1][3].get<double>(), 0.5, 1e-9);  // top-2: expert 3 is one of the two picks of every token
}

TEST_F(TrainEngine, ProbeNamesTheExpertWithoutTokens) {
  // Experts 0 and 1 are forced for every token (top-2), so expert 3 can get no gradient.
  json phase = {{"select", "experts=1:3"}, {"routing", {{"force_route", "1:0,1:1"}}}};
  train::Trainer trainer(fx->options(mixtral, TrainFixture::recipe(phase), "probe"));
  MOEFORGE_EXPECT_ERROR(trainer.run(), "layer 1: expert 3 (0 of 32 probe tokens) gets no gradient; set routing.force_route to \"selected\" or \"1:3\"");
}

TEST_F(TrainEngine, LoraOnOneExpertChangesOnlyThatExpert) {
  auto base = model::Transformer::load(mixtral);
  auto before = snapshot(base->weights());
  json phase = {{"select", "experts=1:2"}, {"method", "lora"}, {"lora", {{"rank", 4}, {"alpha", 8}}},
                {"routing", {{"force_route", "selected"}}}, {"steps", 3}};
  train::Trainer trainer(fx->options(mixtral, TrainFixture::recipe(phase), "lora_expert"));
  auto result = trainer.run();
  auto got = changed_units(before, snapshot(trainer.model().weights()));
  std::map<std::string, std::vector<int64_t>> want = {{"layers.1.experts.w_in", {2}}, {"layers.1.experts.w_out", {2}}};
  EXPECT_EQ(got, want) << describe(got);
  // trainable.safetensors holds only expert 2 of layer 1 (Mixtral is per-expert on disk).
  EXPECT_EQ(result.trainable, (std::vector<std::string>{"model.layers.1.block_sparse_moe.experts.2.w1.weight",
                                                        "model.layers.1.block_sparse_moe.experts.2.w2.weight",
                                                        "model.layers.1.block_sparse_moe.experts.2.w3.weight"}));
}

TEST_F(TrainEngine, ProgressiveUnfreezeGrowsTheSelectionStageByStage) {
  auto base = model::Transformer::load(mixtral);
  auto before = snapshot(base->weights());
  // Layers, top first: stage 1 of 2 trains layer 1 only; stage 2 both.
  json phase = {{"select", "experts + router"}, {"steps", 4}, {"routing", {{"force_route", "selected"}}},
                {"progressive_unfreeze", {{"stages", 2}, {"unit", "layers"}}}};
  auto o = fx->options(mixtral, TrainFixture::recipe(phase, {{"log_every", 1}}), "unfreeze_layers");
  o.stop_after_steps = 2;
  {
    train::Trainer first(o);
    EXPECT_FALSE(first.run().finished);
    auto got = changed_units(before, snapshot(first.model().weights()));
    std::map<std::string, std::vector<int64_t>> want = {
        {"layers.1.experts.w_in", {0, 1, 2, 3}}, {"layers.1.experts.w_out", {0, 1, 2, 3}}, {"layers.1.router", {-1}}};
    EXPECT_EQ(got, want) << describe(got);
  }
  train::Trainer full(fx->options(mixtral, TrainFixture::recipe(phase, {{"log_every", 1}}), "unfreeze_layers_full"));
  ASSERT_TRUE(full.run().finished);
  auto all = changed_units(before, snapshot(full.model().weights()));
  EXPECT_EQ(all.count("layers.0.experts.w_in"), 1u) << describe(all);
  EXPECT_EQ(all.count("layers.0.router"), 1u) << describe(all);
  auto m = test::read_metrics(fx->tmp / "unfreeze_layers_full");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[1]["phase"].get<std::string>(), "phase0.stage1of2");
  EXPECT_EQ(m[2]["phase"].get<std::string>(), "phase0.stage2of2");
  // Experts, top first, routers in every stage: stage 1 of 2 trains layer 1's experts 0 and 1.
  json ex = {{"select", "experts=0:0,0:1,1:0,1:1 + router"}, {"steps", 2}, {"routing", {{"force_route", "selected"}}},
             {"progressive_unfreeze", {{"stages", 2}, {"unit", "experts"}}}};
  auto oe = fx->options(mixtral, TrainFixture::recipe(ex), "unfreeze_experts");
  oe.stop_after_steps = 1;
  train::Trainer e(oe);
  EXPECT_FALSE(e.run().finished);
  auto got = changed_units(before, snapshot(e.model().weights()));
  std::map<std::string, std::vector<int64_t>> want = {{"layers.0.router", {-1}}, {"layers.1.router", {-1}},
                                                      {"layers.1.experts.w_in", {0, 1}}, {"layers.1.experts.w_out", {0, 1}}};
  EXPECT_EQ(got, want) << describe(got);
  json too_many = phase;
  too_many["progressive_unfreeze"]["stages"] = 3;
  train::Trainer bad(fx->options(mixtral, TrainFixture::recipe(too_many), "unfreeze_bad"));
  MOEFORGE_EXPECT_ERROR(bad.run(), ".progressive_unfreeze: 3 stages but the selection has 2 layers to unfreeze");
}

TEST_F(TrainEngine, MergeDeltasEqualsTheTrainedModel) {
  json phase = {{"select", {"experts=0:1", "attention", "norms", "router"}}, {"steps", 3}, {"routing", {{"force_route", "selected"}}}};
  train::Trainer trainer(fx->options(mixtral, TrainFixture::recipe(phase), "merge_run"));
  trainer.run();
  train::MergeOptions mo{mixtral, fx->tmp / "merge_run", fx->tmp / "merged"};
  EXPECT_GT(train::merge_deltas(mo), 0u);
  auto merged = model::Transformer::load(fx->tmp / "merged");
  auto want = snapshot(trainer.model().weights());
  auto got = snapshot(merged->weights());
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, t] : want) EXPECT_TRUE(torch::equal(t, got.at(name))) << name;
  EXPECT_TRUE(std::filesystem::exists(fx->tmp / "merged" / "tokenizer.json"));
  // Onto another model: the tensor that does not fit is named, with the model the run trained.
  auto wider = fx->model("wider", "mixtral", {{"hidden_size", 64}});
  train::MergeOptions wrong{wider, fx->tmp / "merge_run", fx->tmp / "merged_wrong"};
  MOEFORGE_EXPECT_ERROR(train::merge_deltas(wrong), ", the base's [");
  MOEFORGE_EXPECT_ERROR(train::merge_deltas(wrong), "(the run trained " + std::filesystem::absolute(mixtral).string() + "; is ");
  EXPECT_FALSE(std::filesystem::exists(fx->tmp / "merged_wrong"));
}

TEST_F(TrainEngine, ResumeEqualsUninterruptedRun) {
  // Two phases (full experts with router noise, then LoRA attention), checkpoints every 2 steps.
  json r = {{"seed", 5}, {"threads", 1}, {"checkpoint_every", 2},
            {"defaults", {{"batch_size", 2}, {"seq_len", 16}, {"optimizer", {{"lr", 1e-2}}}}},
            {"phases", {{{"steps", 3}, {"select", "experts=1:0 + router"}, {"routing", {{"router_noise_std", 0.1}}}},
                        {{"steps", 4}, {"select", "attention"}, {"method", "lora"}, {"lora", {{"rank", 2}}}}}}};
  train::Trainer full(fx->options(mixtral, r, "resume_a"));
  ASSERT_TRUE(full.run().finished);
  for (int64_t stop : {5, 3}) {  // 5: mid LoRA phase, checkpoint at 4; 3: phase boundary
    const std::string name = "resume_b" + std::to_string(stop);
    interrupted_then_resumed(*fx, mixtral, r, name, stop);
    for (const char* file : {"trainable.safetensors", "adapter_model.safetensors"})
      EXPECT_EQ(file_bytes(fx->tmp / "resume_a" / file), file_bytes(fx->tmp / name / file)) << file << " stop " << stop;
  }
}

TEST_F(TrainEngine, TrainingLowersTheLoss) {
  json phase = {{"select", "all"}, {"steps", 25}, {"batch_size", 4}, {"optimizer", {{"lr", 3e-3}}}};
  train::Trainer trainer(fx->options(mixtral, TrainFixture::recipe(phase), "lower"));
  auto result = trainer.run();
  ASSERT_EQ(result.losses.size(), 25u);
  double first = (result.losses[0] + result.losses[1] + result.losses[2]) / 3, last = (result.losses[22] + result.losses[23] + result.losses[24]) / 3;
  EXPECT_LT(last, first - 0.5) << first << " -> " << last;
}

TEST_F(TrainEngine, ListParamsShowsSelections) {
  json phase = {{"select", "experts=1:0,1:3 + router"}, {"method", "lora"}, {"lora", {{"rank", 4}}}};
  std::string text = train::list_params(mixtral, TrainFixture::recipe(phase), "r.json");
  EXPECT_NE(text.find("layers.1.experts.w_in [4, 96, 32] experts 0,3  lora r4"), std::string::npos) << text;
  EXPECT_NE(text.find("layers.0.router [4, 32]  full  128 params"), std::string::npos) << text;
}

TEST_F(TrainEngine, NonFiniteStepsAreSkippedThenStopTheRun) {
  // lr 1e30 blows the weights up after the first update; later losses are NaN/inf.
  json phase = {{"select", "all"}, {"steps", 8}, {"clip_grad_norm", 0}, {"optimizer", {{"lr", 1e30}}}};
  auto o = fx->options(mixtral, TrainFixture::recipe(phase, {{"max_bad_steps", 2}, {"checkpoint_every", 1}}), "nan");
  train::Trainer trainer(o);
  MOEFORGE_EXPECT_ERROR(trainer.run(), "2 consecutive steps with non-finite loss or gradient");
  EXPECT_TRUE(train::load_latest_checkpoint(o.out_dir).has_value());  // the last good checkpoint is intact
}

TEST_F(TrainEngine, OutDirOfAnotherRunIsRefused) {
  json phase = {{"select", "router"}, {"steps", 1}};
  train::Trainer a(fx->options(mixtral, TrainFixture::recipe(phase), "twice"));
  a.run();
  train::Trainer b(fx->options(mixtral, TrainFixture::recipe(phase), "twice"));
  MOEFORGE_EXPECT_ERROR(b.run(), "continue it with --resume");
}

}  // namespace
}  // namespace moeforge::test
