// Tests of `init`: the seeded normal sampler, config merging/validation, and the written
// checkpoint (every expected tensor, ones/zeros/normal by role, same seed -> same bytes).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "init/normal_sampler.h"
#include "init/random_init.h"
#include "io/checkpoint_store.h"
#include "test_util.h"

namespace moeforge::init {
namespace {
using test::TempDir;

TEST(NormalSampler, DeterministicWithUnitMoments) {
  NormalSampler a(42), b(42), c(43);
  double sum = 0, sq = 0;
  const int n = 200000;
  bool differs = false;
  for (int i = 0; i < n; ++i) {
    double x = a.next();
    EXPECT_EQ(x, b.next());
    differs = differs || x != c.next();
    sum += x;
    sq += x * x;
  }
  EXPECT_TRUE(differs);
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.01);
}

TEST(InitConfig, MergesOverridesAndValidates) {
  InitOptions o;
  o.family = "mixtral";
  o.config = {{"hidden_size", 96}, {"num_local_experts", 8}, {"sliding_window", nullptr}};
  nlohmann::json c = init_config(o);
  EXPECT_EQ(c["hidden_size"], 96);
  EXPECT_EQ(c["num_local_experts"], 8);
  EXPECT_FALSE(c.contains("sliding_window"));  // null removes a default
  EXPECT_EQ(c["model_type"], "mixtral");
  EXPECT_EQ(c["architectures"][0], "MixtralForCausalLM");

  o.config = {{"num_experts_per_tok", 9}};
  MOEFORGE_EXPECT_ERROR(init_config(o), "num_experts_per_tok");
  o.config = {{"model_type", "llama"}};
  MOEFORGE_EXPECT_ERROR(init_config(o), "--family mixtral but the config says model_type 'llama'");
  o.family = "nope";
  o.config = nlohmann::json::object();
  MOEFORGE_EXPECT_ERROR(init_config(o), "unknown family 'nope'");
  for (const std::string& family : supported_model_types()) {
    InitOptions each;
    each.family = family;
    EXPECT_NO_THROW(init_config(each)) << family;
  }
}

TEST(InitModel, WritesEveryTensorDeterministically) {
  TempDir dir;
  InitOptions o;
  o.family = "qwen2_moe";
  o.out = dir / "a";
  o.seed = 5;
  InitResult r = init_model(o);
  auto store = CheckpointStore::open(r.path);
  ModelSpec spec = load_model_spec(*store);
  size_t count = 0;
  for_each_tensor(spec, [&](const ExpectedTensor& t) {
    ++count;
    StoredTensor stored = store->tensor(t.name);
    EXPECT_EQ(stored.info->shape, t.shape) << t.name;
    ByteView view = stored.bytes();
    const float* v = reinterpret_cast<const float*>(view.data);
    size_t n = view.size / 4;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; ++i) sum += v[i], sq += double(v[i]) * v[i];
    if (t.role == TensorRole::AttnNorm || t.role == TensorRole::FinalNorm) EXPECT_EQ(sum, double(n)) << t.name;
    else if (t.role == TensorRole::QBias) EXPECT_EQ(sq, 0.0) << t.name;
    else if (n > 4000) EXPECT_NEAR(std::sqrt(sq / n), 0.02, 0.002) << t.name;
  });
  EXPECT_EQ(count, r.tensors);
  o.out = dir / "b";
  init_model(o);
  auto bytes = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(dir / "a" / "model.safetensors"), bytes(dir / "b" / "model.safetensors"));
}

}  // namespace
}  // namespace moeforge::init
