// The runtime tensor table swept over every family's `init` config (gemma.cpp's habit): what
// loading produces is exactly what the table plans (names, order, shapes), the export mapping
// names tensors the checkpoint really has, and canonical names round-trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "init/random_init.h"
#include "io/checkpoint_store.h"
#include "model/model_weights.h"
#include "model/tensor_table.h"
#include "support/tiny_checkpoint.h"
#include "test_util.h"
#include "train/export.h"
#include "train/trainable.h"

namespace moeforge::model {
namespace {

TEST(TensorTable, EntriesHaveUniqueNamesAndLayerEntriesFormOneBlock) {
  std::set<std::string> names;
  bool seen_layer = false, back_to_model = false;
  for (const RuntimeTensor& t : runtime_tensors()) {
    EXPECT_TRUE(names.insert(t.name).second) << "duplicate entry " << t.name;
    EXPECT_NE(t.get, nullptr) << t.name;
    EXPECT_EQ(find_runtime_tensor(t.name), &t);
    if (t.scope == TensorScope::Layer) {
      EXPECT_FALSE(back_to_model) << t.name << ": per-layer entries must be declared together";
      seen_layer = true;
    } else if (seen_layer) {
      back_to_model = true;
    }
    if (t.source == TensorSource::GateUpRows) EXPECT_NE(t.gate_role, TensorRole::Count) << t.name;
  }
  EXPECT_EQ(find_runtime_tensor("no_such_tensor"), nullptr);
}

TEST(TensorTable, CanonicalNamesRoundTrip) {
  EXPECT_EQ(canonical_name(3, "experts.w_in"), "layers.3.experts.w_in");
  EXPECT_EQ(canonical_name(-1, "embed"), "embed");
  CanonicalName n = parse_canonical_name("layers.12.mlp.w_in");
  EXPECT_EQ(n.layer, 12);
  EXPECT_EQ(n.local, "mlp.w_in");
  n = parse_canonical_name("final_norm");
  EXPECT_EQ(n.layer, -1);
  EXPECT_EQ(n.local, "final_norm");
  for (const char* bad : {"layers.x.q", "layers.3", "layers.3.", "layers..q", "layers.-1.q"})
    EXPECT_THROW(parse_canonical_name(bad), Error) << bad;
}

// Every family, with its own `moeforge init` config: loading follows the table exactly.
TEST(TensorTable, EveryFamilyLoadsWhatTheTablePlans) {
  for (const std::string& family : supported_model_types()) {
    SCOPED_TRACE(family);
    test::TempDir dir;
    nlohmann::json config = init::default_config(family);
    test::write_tiny_checkpoint(dir / "m", config, 7);
    auto store = CheckpointStore::open(dir / "m");
    const ModelSpec spec = load_model_spec(*store);
    ModelWeights weights = load_model_weights(spec, *store, LoadOptions{});
    const std::vector<PlannedTensor> planned = planned_tensors(spec);
    ASSERT_FALSE(planned.empty());
    size_t i = 0;
    std::set<TensorGroup> groups;
    for_each_runtime_tensor(weights, [&](const RuntimeTensor& entry, int64_t layer, const std::string& name, torch::Tensor& t) {
      ASSERT_LT(i, planned.size());
      EXPECT_EQ(name, planned[i].name);
      EXPECT_EQ(entry.name, std::string(planned[i].entry->name));
      EXPECT_EQ(layer, planned[i].layer);
      EXPECT_EQ(t.sizes().vec(), planned[i].shape) << name;
      EXPECT_EQ(parse_canonical_name(name).layer, layer);
      groups.insert(entry.group);
      ++i;
    });
    EXPECT_EQ(i, planned.size());
    EXPECT_TRUE(groups.count(TensorGroup::Embedding) && groups.count(TensorGroup::Norm) &&
                groups.count(TensorGroup::Attention));
    EXPECT_EQ(groups.count(TensorGroup::Experts) > 0, spec.has_moe());
    EXPECT_EQ(groups.count(TensorGroup::LmHead) > 0, !spec.tie_word_embeddings);

    // The trainer's view is the same sweep, from the spec alone: the shapes loading produced.
    std::map<std::string, std::vector<int64_t>> held;
    for_each_parameter(weights, [&](const std::string& name, torch::Tensor& t) { held[name] = t.sizes().vec(); });
    auto params = train::describe_parameters(spec);
    ASSERT_EQ(params.size(), planned.size());
    ASSERT_EQ(params.size(), held.size());
    for (size_t p = 0; p < params.size(); ++p) {
      EXPECT_EQ(params[p].name, planned[p].name);
      EXPECT_EQ(params[p].shape, held.at(params[p].name)) << params[p].name;
      EXPECT_EQ(params[p].group, planned[p].entry->group);
      EXPECT_EQ(params[p].num_experts > 0, planned[p].entry->source == TensorSource::Experts);
    }

    // The export mapping names tensors this checkpoint has, and covers every row once.
    for (const PlannedTensor& t : planned) {
      if (t.entry->source == TensorSource::Experts) {
        EXPECT_THROW(train::hf_pieces(spec, t.name, t.shape[0]), Error) << t.name;
        continue;
      }
      const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
      int64_t covered = 0;
      for (const train::HfPiece& piece : train::hf_pieces(spec, t.name, rows)) {
        EXPECT_TRUE(store->contains(piece.name)) << t.name << " -> " << piece.name;
        EXPECT_EQ(piece.row_begin, covered) << t.name;
        covered += piece.rows < 0 ? rows : piece.rows;
      }
      EXPECT_EQ(covered, rows) << t.name;
    }
  }
}

}  // namespace
}  // namespace moeforge::model
