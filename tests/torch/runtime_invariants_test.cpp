// Runtime invariants on tiny random checkpoints: KV-cache logits equal full logits, a Mixtral whose
// experts copy a Mistral FFN gives the Mistral logits, top-k = E with a uniform router is the dense
// mixture, GPT-OSS sinks at -inf reduce to plain attention, bad weights are rejected by name.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "common/error.h"
#include "io/checkpoint_store.h"
#include "model/generate.h"
#include "model/transformer.h"
#include "support/tiny_checkpoint.h"
#include "test_util.h"

namespace moeforge::model {
namespace {

torch::Tensor ids_of(std::vector<int64_t> ids) { return torch::tensor(ids, torch::kInt64).unsqueeze(0); }

TEST(RuntimeInvariants, KvCacheLogitsEqualFullLogits) {
  for (const std::string family : {"mistral", "mixtral", "gpt_oss", "deepseek_v3", "gpt_neo_moe"}) {
    test::TempDir dir;
    test::write_tiny_checkpoint(dir / "m", test::tiny_config(family), 11);
    auto model = Transformer::load(dir / "m");
    std::vector<int64_t> ids = {5, 17, 3, 88, 42, 9, 61, 7, 33, 2};
    torch::NoGradGuard no_grad;
    auto full = model->forward(ids_of(ids)).logits[0];  // [T, V]
    KvCache cache;
    ForwardOptions options;
    options.cache = &cache;
    auto prefill = model->forward(ids_of({ids.begin(), ids.begin() + 4}), options).logits[0];
    EXPECT_TRUE(torch::allclose(prefill, full.narrow(0, 0, 4), 1e-5, 1e-5)) << family;
    for (size_t t = 4; t < ids.size(); ++t) {
      auto step = model->forward(ids_of({ids[t]}), options).logits[0][0];
      EXPECT_LT((step - full[t]).abs().max().item<float>(), 1e-5) << family << " position " << t;
    }
    EXPECT_EQ(cache.length(), static_cast<int64_t>(ids.size()));
  }
}

TEST(RuntimeInvariants, MixtralOfIdenticalExpertsEqualsMistral) {
  test::TempDir dir;
  auto dense_config = test::tiny_config("mistral", {{"sliding_window", nullptr}, {"rope_theta", 10000.0}});
  test::write_tiny_checkpoint(dir / "dense", dense_config, 5);
  auto dense = Transformer::load(dir / "dense");
  // Build the Mixtral: same tensors, each expert's w1/w3/w2 = the dense gate/up/down.
  auto moe_config = test::tiny_config("mixtral", {{"sliding_window", nullptr}, {"rope_theta", 10000.0}});
  auto dense_store = CheckpointStore::open(dir / "dense");
  auto copy_from_dense = [&](const std::string& name, std::vector<float>& values) {
    std::string source = name;
    auto replace = [&](const std::string& from, const std::string& to) {
      auto at = source.find(from);
      if (at == std::string::npos) return false;
      auto experts = source.find("block_sparse_moe.experts.");
      std::string prefix = source.substr(0, experts);
      source = prefix + "mlp." + to + ".weight";
      return true;
    };
    if (name.find("block_sparse_moe.gate") != std::string::npos) {
      std::fill(values.begin(), values.end(), 0.3f);  // any router: experts are identical
      for (size_t i = 0; i < values.size(); ++i) values[i] = 0.01f * static_cast<float>(i % 13);
      return true;
    }
    if (!(replace(".w1.", "gate_proj") || replace(".w3.", "up_proj") || replace(".w2.", "down_proj"))) {
      if (!dense_store->contains(name)) return false;
    }
    ByteView bytes = dense_store->tensor(source).bytes();
    std::memcpy(values.data(), bytes.data, values.size() * sizeof(float));
    return true;
  };
  test::write_tiny_checkpoint(dir / "moe", moe_config, 6, 0.05f, copy_from_dense);
  auto moe = Transformer::load(dir / "moe");
  torch::NoGradGuard no_grad;
  auto ids = ids_of({1, 2, 3, 50, 60, 70, 80, 90});
  auto a = dense->forward(ids).logits;
  auto b = moe->forward(ids).logits;
  EXPECT_LT(((a - b).abs().max() / a.abs().max()).item<float>(), 1e-5);
}

TEST(RuntimeInvariants, TopKEqualsEWithUniformRouterIsDenseMixture) {
  test::TempDir dir;
  auto config = test::tiny_config("mixtral", {{"num_experts_per_tok", 4}});
  test::write_tiny_checkpoint(dir / "m", config, 9, 0.05f, [](const std::string& name, std::vector<float>& v) {
    if (name.find("block_sparse_moe.gate") == std::string::npos) return false;
    std::fill(v.begin(), v.end(), 0.0f);  // uniform routing
    return true;
  });
  auto model = Transformer::load(dir / "m");
  torch::NoGradGuard no_grad;
  // Layer 0 MoE output == mean over experts of each expert's output (computed independently).
  const auto& L = model->weights().layers[0];
  auto x = torch::randn({6, 32});
  auto ids = torch::arange(4).repeat({6, 1});
  auto weights = torch::full({6, 4}, 0.25f);
  auto fused = run_experts(x, ids, weights, L.experts, activation_for(model->spec()));
  auto mixture = torch::zeros_like(x);
  for (int e = 0; e < 4; ++e) {
    auto pre = torch::matmul(x, L.experts.w_in[e].t());
    auto halves = pre.chunk(2, -1);
    mixture += 0.25 * torch::matmul(torch::silu(halves[0]) * halves[1], L.experts.w_out[e].t());
  }
  EXPECT_TRUE(torch::allclose(fused, mixture, 1e-5, 1e-6));
  auto routing = route(torch::zeros({6, 4}), router_options_for(model->spec()));
  EXPECT_TRUE(torch::allclose(routing.weights, weights));
}

TEST(RuntimeInvariants, GptOssSinksAtMinusInfinityArePlainAttention) {
  test::TempDir dir;
  auto config = test::tiny_config("gpt_oss");
  test::write_tiny_checkpoint(dir / "m", config, 3);
  LoadOptions private_copies;  // the test overwrites the sinks: no read-only views of the file
  private_copies.map_frozen = false;
  auto model = Transformer::load(dir / "m", private_copies);
  torch::NoGradGuard no_grad;
  auto ids = ids_of({4, 8, 15, 16, 23, 42});
  auto with_sinks = model->forward(ids).logits;
  for (auto& layer : model->weights().layers) layer.sinks.fill_(-std::numeric_limits<float>::infinity());
  auto no_sink_effect = model->forward(ids).logits;
  for (auto& layer : model->weights().layers) layer.sinks = torch::Tensor();  // plain attention path
  auto plain = model->forward(ids).logits;
  EXPECT_TRUE(torch::allclose(no_sink_effect, plain, 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(with_sinks, plain, 1e-6, 1e-6));
}

TEST(RuntimeInvariants, GenerationIsDeterministicAndMatchesGreedyForward) {
  test::TempDir dir;
  test::write_tiny_checkpoint(dir / "m", test::tiny_config("mixtral"), 21, 0.3f);
  auto model = Transformer::load(dir / "m");
  SamplingOptions greedy;
  greedy.max_new_tokens = 6;
  auto produced = generate(*model, {3, 1, 4, 1, 5}, greedy);
  ASSERT_EQ(produced.size(), 6u);
  // Greedy with cache == argmax of full forward at each step.
  std::vector<int64_t> sequence = {3, 1, 4, 1, 5};
  torch::NoGradGuard no_grad;
  for (int64_t next : produced) {
    auto logits = model->forward(ids_of(sequence)).logits[0][-1];
    EXPECT_EQ(logits.argmax().item<int64_t>(), next);
    sequence.push_back(next);
  }
  SamplingOptions sampled;
  sampled.max_new_tokens = 8;
  sampled.temperature = 1.0;
  sampled.top_p = 0.9;
  sampled.top_k = 20;
  sampled.seed = 1234;
  EXPECT_EQ(generate(*model, {3, 1}, sampled), generate(*model, {3, 1}, sampled));
}

TEST(RuntimeInvariants, BadWeightsAreRejectedByName) {
  test::TempDir dir;
  test::write_tiny_checkpoint(dir / "nan", test::tiny_config("mistral"), 1, 0.05f,
                              [](const std::string& name, std::vector<float>& v) {
                                if (name != "model.layers.1.self_attn.k_proj.weight") return false;
                                v[3] = std::numeric_limits<float>::quiet_NaN();
                                return true;
                              });
  MOEFORGE_EXPECT_ERROR(Transformer::load(dir / "nan"), "tensor 'model.layers.1.self_attn.k_proj.weight' contains NaN");
  auto model = [&] {
    test::TempDir d2;
    test::write_tiny_checkpoint(d2 / "m", test::tiny_config("mistral"), 1);
    return Transformer::load(d2 / "m");
  }();
  MOEFORGE_EXPECT_ERROR(model->forward(ids_of({1, 500})), "token id out of range");
}

}  // namespace
}  // namespace moeforge::model
