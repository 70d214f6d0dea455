// End to end on tiny random checkpoints written by our own writer: upcycle copy is exact, grow
// reports its delta and keeps old experts, a shared expert at scale 0 is the original, and errors
// leave nothing behind.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "surgery/grow.h"
#include "surgery/shared_expert.h"
#include "surgery/surgery_util.h"
#include "surgery/upcycle.h"
#include "surgery/verify.h"
#include "test_util.h"

namespace moeforge::surgery {
namespace {

namespace fs = std::filesystem;

// Writes a random checkpoint for `config` (norm weights near 1, the rest N(0, 0.05)).
void write_random_model(const fs::path& dir, const nlohmann::json& config) {
  ModelSpec spec = spec_from_config(config, nullptr, "test");
  std::vector<TensorDecl> decls;
  for (const auto& t : expected_tensors(spec)) decls.push_back({t.name, DType::F32, t.shape});
  CheckpointWriter writer(dir, decls);
  uint64_t seed = 1;
  for (const auto& d : decls) {
    uint64_t n = d.num_bytes() / 4;
    bool norm = d.name.find("norm") != std::string::npos;
    write_floats(writer, d.name, DType::F32, normal_floats(n, norm ? 1.0 : 0.0, norm ? 0.1 : 0.05, seed++));
  }
  writer.add_file("config.json", config.dump());
  writer.commit();
}

nlohmann::json llama_config() {
  return {{"model_type", "llama"}, {"hidden_size", 32}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"vocab_size", 64}, {"intermediate_size", 48}, {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-5}};
}

ExecuteOptions quiet() {
  ExecuteOptions o;
  o.quiet = true;
  return o;
}

TEST(SurgeryEndToEnd, UpcycleCopyIsExactAndGrowAndSharedWork) {
  test::TempDir dir;
  write_random_model(dir / "dense", llama_config());
  UpcycleOptions up;
  up.source = dir / "dense";
  up.out = dir / "moe";
  up.num_experts = 4;
  up.top_k = 2;
  up.execute = quiet();
  upcycle(up);
  EXPECT_LE(compare_models(dir / "dense", dir / "moe").max_abs_diff, 1e-5);

  GrowOptions g;
  g.source = dir / "moe";
  g.out = dir / "grown";
  g.clone = "*:1";
  g.execute = quiet();
  GrowResult grown = grow(g);
  EXPECT_EQ(grown.experts_after, 5);
  EXPECT_GE(grown.max_logit_diff, 0.0);
  EXPECT_TRUE(fs::exists(dir / "grown" / "moeforge_grow.json"));
  auto a = CheckpointStore::open(dir / "moe"), b = CheckpointStore::open(dir / "grown");
  auto old_bytes = a->tensor("model.layers.1.block_sparse_moe.experts.1.w1.weight").bytes();
  auto clone_bytes = b->tensor("model.layers.1.block_sparse_moe.experts.4.w1.weight").bytes();
  ASSERT_EQ(old_bytes.size, clone_bytes.size);
  EXPECT_EQ(std::memcmp(old_bytes.data, clone_bytes.data, old_bytes.size), 0);

  SharedExpertOptions s;
  s.source = dir / "moe";
  s.out = dir / "shared";
  s.scale = 0.0;
  s.execute = quiet();
  add_shared_expert(s);
  EXPECT_LE(compare_models(dir / "moe", dir / "shared").max_abs_diff, 1e-6);
}

TEST(SurgeryEndToEnd, ErrorsLeaveNothingBehind) {
  test::TempDir dir;
  write_random_model(dir / "dense", llama_config());
  UpcycleOptions up;
  up.source = dir / "dense";
  up.out = dir / "moe";
  up.num_experts = 2;
  up.top_k = 3;
  up.execute = quiet();
  MOEFORGE_EXPECT_ERROR(upcycle(up), "--top-k");
  up.top_k = 1;
  up.to = "gpt_oss";
  MOEFORGE_EXPECT_ERROR(upcycle(up), "--to");
  up.to = "mixtral";
  up.execute.dry_run = true;
  upcycle(up);
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) entries += e.path().filename() != "dense";
  EXPECT_EQ(entries, 0u);
}

}  // namespace
}  // namespace moeforge::surgery
