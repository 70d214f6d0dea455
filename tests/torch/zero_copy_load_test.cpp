// Zero-copy loading: frozen tensors stored in the run dtype are read-only views of the mapped
// file (a write faults), the views keep the mapping alive, training copies exactly what it trains
// first, results are bit-identical to private copies, and the input file never changes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/transformer.h"
#include "tensor/torch_bridge.h"
#include "train/optimizer.h"
#include "train/trainable.h"
#include "train_test_support.h"

namespace moeforge::test {
namespace {

using nlohmann::json;

std::unique_ptr<model::Transformer> load(const std::filesystem::path& dir, bool map_frozen,
                                         torch::Dtype dtype = torch::kFloat32) {
  model::LoadOptions o;
  o.map_frozen = map_frozen;
  o.dtype = dtype;
  return model::Transformer::load(dir, o);
}

torch::Tensor some_ids() { return torch::tensor(std::vector<int64_t>{5, 17, 3, 88, 42, 9, 61, 7}, torch::kInt64).unsqueeze(0); }

class ZeroCopyLoad : public TinyMixtralSuite {};
class ZeroCopyLoadDeathTest : public TinyMixtralSuite {};

TEST_F(ZeroCopyLoad, FrozenTensorsInTheRunDtypeAreViewsOfTheFile) {
  auto viewed = load(mixtral, true);
  auto copied = load(mixtral, false);
  auto bf16 = load(mixtral, true, torch::kBFloat16);  // fp32 file, bf16 run: converted tensor by tensor
  int views = 0;
  model::for_each_parameter(viewed->weights(), [&](const std::string& name, torch::Tensor& t) {
    // Mixtral stores one tensor per expert: stacking them into [E, ...] is a copy. The rest is viewed.
    const bool stacked = name.find(".experts.") != std::string::npos;
    EXPECT_EQ(is_mapped_view(t), !stacked) << name;
    views += is_mapped_view(t);
  });
  EXPECT_GT(views, 10);
  for (auto* m : {copied.get(), bf16.get()})
    model::for_each_parameter(m->weights(), [&](const std::string& name, torch::Tensor& t) {
      EXPECT_FALSE(is_mapped_view(t)) << name;
    });
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(viewed->forward(some_ids()).logits, copied->forward(some_ids()).logits));
}

TEST_F(ZeroCopyLoad, ViewsKeepTheMappingAliveAfterTheModelIsGone) {
  torch::Tensor q, expected;
  {
    auto m = load(mixtral, true);
    q = m->weights().layers[0].q;
    expected = q.clone();
  }
  ASSERT_TRUE(is_mapped_view(q));
  EXPECT_TRUE(torch::equal(q, expected));  // still mapped: the storage holds the shard
}

TEST_F(ZeroCopyLoadDeathTest, WritingIntoAViewFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto m = load(mixtral, true);
        m->weights().layers[0].q.add_(1.0);  // PROT_READ mapping: SIGSEGV, the file is not touched
      },
      "");
}

TEST_F(ZeroCopyLoad, TrainingCopiesWhatItTrainsBitIdenticallyAndLeavesTheFileUnchanged) {
  const auto file = mixtral / "model.safetensors";
  const std::string before = file_bytes(file);
  auto run = [&](bool map_frozen) {
    auto m = load(mixtral, map_frozen);
    const int64_t E = m->spec().moe.num_experts;
    std::vector<bool> one_expert(E, false);
    one_expert[1] = true;
    train::Selection selection = {{"embed", {true}},
                                  {"layers.0.q", {true}},
                                  {"layers.1.router", {true}},
                                  {"layers.1.experts.w_in", one_expert}};
    train::TrainableSet set(m->weights(), m->spec(), selection, train::TrainableOptions{});
    auto& w = m->weights();
    EXPECT_FALSE(is_mapped_view(w.embed));
    EXPECT_FALSE(is_mapped_view(w.layers[0].q));
    EXPECT_EQ(is_mapped_view(w.layers[0].k), map_frozen);  // not selected: stays a view
    if (m->spec().tie_word_embeddings) EXPECT_TRUE(w.lm_head.is_same(w.embed));
    train::OptimizerOptions oo;
    oo.lr = 1e-2;
    train::Optimizer opt(oo);
    auto ids = some_ids();
    for (int step = 0; step < 3; ++step) {
      auto logits = m->forward_with(set.effective_weights(), ids, {}).logits[0];  // [T, V]
      auto loss = torch::nn::functional::cross_entropy(logits.narrow(0, 0, 7), ids[0].narrow(0, 1, 7));
      loss.backward();
      opt.step(set.leaves(), oo.lr);
      set.write_back();
      set.zero_grad();
    }
    set.finish();
    return snapshot(m->weights());
  };
  auto viewed = run(true), copied = run(false);
  for (const auto& [name, t] : copied) EXPECT_TRUE(torch::equal(viewed.at(name), t)) << name;
  EXPECT_FALSE(torch::equal(viewed.at("layers.0.q"), snapshot(load(mixtral, false)->weights()).at("layers.0.q")));
  EXPECT_TRUE(file_bytes(file) == before) << "training wrote into " << file;
}

TEST_F(ZeroCopyLoad, TrainingEverythingAndResumingLeavesTheFileUnchanged) {
  const auto file = mixtral / "model.safetensors";
  const std::string before = file_bytes(file);
  auto resumed = interrupted_then_resumed(*fx, mixtral, TrainFixture::recipe({{"select", "all"}, {"steps", 3}}), "all", 1);
  EXPECT_TRUE(file_bytes(file) == before) << "training wrote into " << file;
}

}  // namespace
}  // namespace moeforge::test
