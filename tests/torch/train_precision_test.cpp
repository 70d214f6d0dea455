// Training with `precision: "bf16"`: the model runs in bf16, trained tensors keep fp32 masters that
// the optimiser updates, the export and checkpoints carry the masters, resume stays exact, and the
// trajectory follows the fp32 one. Also the --device checks.
#include <gtest/gtest.h>

#include <torch/cuda.h>

#include <set>

#include "io/checkpoint_store.h"
#include "tensor/torch_bridge.h"
#include "train/export.h"
#include "train_test_support.h"

namespace moeforge::test {
namespace {

using nlohmann::json;

class TrainPrecision : public TinyMixtralSuite {
 protected:
  static json bf16(json recipe) {
    recipe["precision"] = "bf16";
    return recipe;
  }
};

const json kPhase = {{"select", "experts=1:0 + router + attention"}, {"steps", 3}, {"routing", {{"force_route", "selected"}}}};

TEST_F(TrainPrecision, Bf16TrainsFp32MastersAndExportsThem) {
  auto initial = snapshot(model::Transformer::load(mixtral)->weights());
  train::Trainer trainer(fx->options(mixtral, bf16(TrainFixture::recipe(kPhase)), "bf16_run"));
  ASSERT_TRUE(trainer.run().finished);
  EXPECT_EQ(trainer.model().dtype(), torch::kBFloat16);

  // Exactly the selected tensors have masters, in fp32; the model holds their bf16 rounding.
  std::set<std::string> names;
  for (const auto& [name, master] : trainer.masters()) names.insert(name);
  const std::set<std::string> want = {"layers.0.router", "layers.1.router", "layers.0.q", "layers.0.k", "layers.0.v",
                                      "layers.0.o", "layers.1.q", "layers.1.k", "layers.1.v", "layers.1.o",
                                      "layers.1.experts.w_in", "layers.1.experts.w_out"};
  EXPECT_EQ(names, want);
  auto now = snapshot(trainer.model().weights());
  for (const auto& [name, master] : trainer.masters()) {
    EXPECT_EQ(master.scalar_type(), torch::kFloat32) << name;
    EXPECT_FALSE(master.requires_grad()) << name;
    EXPECT_TRUE(torch::equal(now.at(name), master.to(torch::kBFloat16))) << name;
  }
  // Frozen tensors (and the frozen experts of a trained stack) stay the bf16 rounding of the checkpoint.
  for (const char* frozen : {"embed", "layers.0.experts.w_in", "final_norm", "lm_head"})
    EXPECT_TRUE(torch::equal(now.at(frozen), initial.at(frozen).to(torch::kBFloat16))) << frozen;
  const auto& w_in = trainer.masters().at("layers.1.experts.w_in");
  EXPECT_TRUE(torch::equal(w_in.narrow(0, 1, 3), initial.at("layers.1.experts.w_in").narrow(0, 1, 3).to(torch::kBFloat16).to(torch::kFloat32)));
  EXPECT_FALSE(torch::equal(w_in[0], initial.at("layers.1.experts.w_in")[0].to(torch::kBFloat16).to(torch::kFloat32)));

  // trainable.safetensors holds the masters in fp32 (not their bf16 rounding): merge into the fp32 base.
  train::MergeOptions mo{mixtral, fx->tmp / "bf16_run", fx->tmp / "bf16_merged"};
  ASSERT_GT(train::merge_deltas(mo), 0u);
  auto merged = snapshot(model::Transformer::load(fx->tmp / "bf16_merged")->weights());
  for (const char* name : {"layers.0.router", "layers.1.q", "layers.0.o"})
    EXPECT_TRUE(torch::equal(merged.at(name), trainer.masters().at(name))) << name;
  EXPECT_TRUE(torch::equal(merged.at("layers.1.experts.w_in")[0], w_in[0]));
  EXPECT_TRUE(torch::equal(merged.at("layers.1.experts.w_in")[2], initial.at("layers.1.experts.w_in")[2]));  // untouched expert: fp32 base
  EXPECT_TRUE(torch::equal(merged.at("embed"), initial.at("embed")));
}

TEST_F(TrainPrecision, MastersKeepUpdatesBelowBf16Resolution) {
  // Weights ~0.1 have a bf16 spacing of ~5e-4; three Adam steps of lr 1e-5 move them ~3e-5, which a
  // bf16 weight would round away but the fp32 master keeps.
  json phase = {{"select", "attention"}, {"steps", 3}, {"clip_grad_norm", 0}, {"optimizer", {{"lr", 1e-5}}}};
  train::Trainer trainer(fx->options(mixtral, bf16(TrainFixture::recipe(phase)), "bf16_small"));
  ASSERT_TRUE(trainer.run().finished);
  auto initial = snapshot(model::Transformer::load(mixtral)->weights());
  const auto start = initial.at("layers.0.q").to(torch::kBFloat16).to(torch::kFloat32);
  const auto& master = trainer.masters().at("layers.0.q");
  const double moved = (master - start).abs().max().item<double>();
  EXPECT_GT(moved, 1.5e-5);
  EXPECT_LT(moved, 1e-4);
  const double changed_in_bf16 =
      (trainer.model().weights().layers[0].q.to(torch::kFloat32) != start).to(torch::kFloat32).mean().item<double>();
  EXPECT_LT(changed_in_bf16, 0.2) << "most weights must not move at bf16 resolution";
  const double changed_in_master = (master != start).to(torch::kFloat32).mean().item<double>();
  EXPECT_GT(changed_in_master, 0.9);
}

TEST_F(TrainPrecision, Bf16FollowsTheFp32Trajectory) {
  json phase = {{"select", "experts=1:0 + router + attention"}, {"steps", 6}, {"batch_size", 4},
                {"routing", {{"force_route", "selected"}}}, {"optimizer", {{"lr", 3e-3}}}};
  // The same batch at every step, so the loss must fall in both precisions.
  auto on_one_block = [&](train::TrainOptions o) {
    o.data_spec = fx->one_block_data().string();
    return o;
  };
  train::Trainer full(on_one_block(fx->options(mixtral, TrainFixture::recipe(phase), "traj_fp32")));
  auto a = full.run();
  train::Trainer half(on_one_block(fx->options(mixtral, bf16(TrainFixture::recipe(phase)), "traj_bf16")));
  auto b = half.run();
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_NEAR(a.losses[i], b.losses[i], 0.005 * a.losses[i]) << "step " << i;
  EXPECT_LT(b.losses.back(), b.losses.front());
  // The weight updates point the same way: cosine of (trained - start) between the runs. Forced
  // routing saturates the router's softmax (a large bias on the selected expert), so its gradients are
  // tiny and Adam's normalisation turns their bf16 rounding noise into direction changes; its bound
  // is looser (0.941 measured on CI); an unrelated update would be near 0.
  auto initial = snapshot(model::Transformer::load(mixtral)->weights());
  auto fp32_now = snapshot(full.model().weights());
  for (auto [name, bound] : {std::pair{"layers.0.q", 0.95}, {"layers.1.v", 0.95}, {"layers.1.router", 0.85}}) {
    auto d32 = (fp32_now.at(name) - initial.at(name)).flatten();
    auto d16 = (half.masters().at(name) - initial.at(name).to(torch::kBFloat16).to(torch::kFloat32)).flatten();
    const double cosine = (d32 * d16).sum().item<double>() / (d32.norm() * d16.norm()).item<double>();
    EXPECT_GT(cosine, bound) << name;
  }
}

TEST_F(TrainPrecision, Bf16ResumeEqualsUninterruptedRun) {
  // Full expert slice + router with noise, then LoRA on attention; checkpoints every 2 steps.
  json r = {{"seed", 5}, {"threads", 1}, {"checkpoint_every", 2}, {"precision", "bf16"},
            {"defaults", {{"batch_size", 2}, {"seq_len", 16}, {"optimizer", {{"lr", 1e-2}}}}},
            {"phases", {{{"steps", 3}, {"select", "experts=1:0 + router"}, {"routing", {{"router_noise_std", 0.1}}}},
                        {{"steps", 4}, {"select", "attention + router"}, {"method", "lora"}, {"lora", {{"rank", 2}, {"router", true}}}}}}};
  train::Trainer full(fx->options(mixtral, r, "bf16_resume_a"));
  ASSERT_TRUE(full.run().finished);
  for (int64_t stop : {5, 3, 2}) {  // mid LoRA phase (checkpoint at 4); phase boundary; mid first phase
    const std::string name = "bf16_resume_b" + std::to_string(stop);
    auto second = interrupted_then_resumed(*fx, mixtral, r, name, stop);
    for (const char* file : {"trainable.safetensors", "adapter_model.safetensors"})
      EXPECT_EQ(file_bytes(fx->tmp / "bf16_resume_a" / file), file_bytes(fx->tmp / name / file)) << file << " stop " << stop;
    ASSERT_EQ(full.masters().size(), second->masters().size());
    for (const auto& [n, m] : full.masters()) EXPECT_TRUE(torch::equal(m, second->masters().at(n))) << n << " stop " << stop;
  }
}

TEST_F(TrainPrecision, DeviceIsCheckedAndRecorded) {
  json phase = {{"select", "router"}, {"steps", 1}};
  auto o = fx->options(mixtral, TrainFixture::recipe(phase), "dev_bad");
  o.device = "tpu";
  MOEFORGE_EXPECT_ERROR(train::Trainer(o).run(), "train: --device 'tpu' is not cpu or cuda[:N]");
  if (!torch::cuda::is_available()) {
    o.device = "cuda";
    o.out_dir = fx->tmp / "dev_cuda";
    MOEFORGE_EXPECT_ERROR(train::Trainer(o).run(), "train: --device cuda: no CUDA device is available");
  }
  o.device = "cpu";
  o.out_dir = fx->tmp / "dev_cpu";
  ASSERT_TRUE(train::Trainer(o).run().finished);
  EXPECT_EQ(read_json_file(o.out_dir / "run.json").at("device"), "cpu");
}

TEST_F(TrainPrecision, UnknownPrecisionNamesTheField) {
  json phase = {{"select", "router"}, {"steps", 1}};
  auto o = fx->options(mixtral, TrainFixture::recipe(phase, {{"precision", "fp16"}}), "prec_bad");
  MOEFORGE_EXPECT_ERROR(train::Trainer(o).run(), "precision");
}

}  // namespace
}  // namespace moeforge::test
