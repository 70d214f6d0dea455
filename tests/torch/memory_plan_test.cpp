// The memory plan: predicted from headers alone, equal to what loading then holds (weights, and
// which of them are views of the file), and an impossible budget refused before any weight is read.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "common/error.h"
#include "io/checkpoint_store.h"
#include "arch/family_adapter.h"
#include "model/memory_plan.h"
#include "model/transformer.h"
#include "support/tiny_checkpoint.h"
#include "tensor/torch_bridge.h"
#include "test_util.h"

namespace moeforge::model {
namespace {

TEST(MemoryPlan, MatchesWhatLoadingHolds) {
  for (const std::string family : {"mistral", "mixtral", "gpt_oss", "deepseek_v3"}) {
    test::TempDir dir;
    test::write_tiny_checkpoint(dir / "m", test::tiny_config(family), 3);
    auto store = CheckpointStore::open(dir / "m");
    const ModelSpec spec = load_model_spec(*store);
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      SCOPED_TRACE(family + (dtype == torch::kFloat32 ? " fp32" : " bf16"));
      const MemoryPlan plan = plan_model_memory(spec, *store, from_scalar_type(dtype), true, true);
      LoadOptions o;
      o.dtype = dtype;
      auto model = Transformer::load(dir / "m", o);
      uint64_t weights = 0, mapped = 0;
      for_each_parameter(model->weights(), [&](const std::string&, torch::Tensor& t) {
        weights += t.numel() * t.element_size();
        if (is_mapped_view(t)) mapped += t.numel() * t.element_size();
      });
      EXPECT_EQ(plan.weights, weights);
      EXPECT_EQ(plan.mapped, mapped);  // the fixture stores F32: bf16 runs view nothing
      if (dtype == torch::kFloat32) EXPECT_GT(mapped, 0u);
      else EXPECT_EQ(mapped, 0u);
      EXPECT_EQ(plan.host_peak(), plan.weights + plan.transient + plan.runtime);
    }
  }
}

TEST(MemoryPlan, ImpossibleBudgetIsRefusedBeforeAnyWeightIsRead) {
  test::TempDir dir;
  // A NaN weight: had loading begun, the NaN check would be the error.
  test::write_tiny_checkpoint(dir / "m", test::tiny_config("mixtral"), 3, 0.05f, [](const std::string& name, std::vector<float>& v) {
    if (name.find("embed_tokens") == std::string::npos) return false;
    v[0] = std::nanf("");
    return true;
  });
  LoadOptions o;
  o.max_memory_bytes = 1000000;  // 1 MB
  const auto start = std::chrono::steady_clock::now();
  MOEFORGE_EXPECT_ERROR(Transformer::load(dir / "m", o), "but the memory budget is 0.00 GB (--max-memory");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  o.max_memory_bytes = 0;  // no limit: loading starts and meets the NaN
  MOEFORGE_EXPECT_ERROR(Transformer::load(dir / "m", o), "contains NaN or infinite values");
}

TEST(MemoryPlan, LocalRanksShareTheBudgetWithTheMappedWeightsOnce) {
  constexpr uint64_t GB = 1000000000;
  EXPECT_EQ(rank_budget(10 * GB, 1, 2 * GB), 10 * GB);
  EXPECT_EQ(rank_budget(10 * GB, 2, 2 * GB), 6 * GB);  // 2 mapped for both, 4 each of the other 8
  EXPECT_EQ(rank_budget(10 * GB, 4, 0), 10 * GB / 4);
  EXPECT_EQ(rank_budget(GB, 2, 3 * GB), GB);  // more mapped than the budget: nothing left to split
  EXPECT_EQ(rank_budget(0, 2, GB), 0u);       // no limit stays no limit

  test::TempDir dir;
  test::write_tiny_checkpoint(dir / "m", test::tiny_config("mixtral"), 3);
  auto store = CheckpointStore::open(dir / "m");
  const MemoryPlan plan = plan_model_memory(load_model_spec(*store), *store, DType::F32, true, true);
  ASSERT_GT(plan.host_peak(), plan.mapped + 1000000);
  LoadOptions o;
  o.max_memory_bytes = static_cast<int64_t>(plan.host_peak() + 1000000);  // one process fits
  EXPECT_NO_THROW(Transformer::load(dir / "m", o));
  o.local_ranks = 2;  // two processes of one run on this machine do not
  MOEFORGE_EXPECT_ERROR(Transformer::load(dir / "m", o), "but this rank's share of the memory budget is");
  MOEFORGE_EXPECT_ERROR(Transformer::load(dir / "m", o), "for the 2 processes of this run on this machine, the mapped weights counted once");
}

}  // namespace
}  // namespace moeforge::model
