// ZeRO-3 for the frozen weights (`train --zero 3`): every frozen layer matrix, and the frozen
// embedding and LM head, is split over the ranks, each keeping 1/N of its values (a private shard);
// a layer's shards are all-gathered just before it runs and dropped after, and the layer is
// recomputed in the backward (model/layer_recompute.h), so a rank holds about 1/N of the frozen
// weights plus one layer made whole. The vocabulary is split by rows: a forward's embedding rows
// are fetched from the ranks that hold them (all-to-all of the token ids, then of their rows), and
// the head is made whole only for the loss's pass over it. What a phase trains, and what earlier
// phases changed, stays whole (its gradients, masters and optimiser state are sharded by ZeRO-2).
// Packed MXFP4 experts are split (by their bytes) when the ranks do not share one page cache: on a
// GPU (device copies), or over several machines; the local ranks of one CPU machine map them from
// the file once for all. Routers, norms and learned positions are not split.
#pragma once

#include <torch/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/layer_recompute.h"
#include "model/tensor_table.h"

namespace moeforge::dist {
class World;
}

namespace moeforge::train {

class ShardedFrozen : public model::LayerWeightSource {
 public:
  // `split_packed`: packed MXFP4 experts are split too.
  ShardedFrozen(dist::World& world, bool split_packed) : world_(world), split_packed_(split_packed) {}
  // Whether packed experts on `device` are worth splitting: the ranks share no page cache (a GPU's
  // device copies, or a world over several machines).
  static bool packed_unshared(const torch::Device& device, const dist::World& world);

  // Sets `load` to split each tensor as it is loaded (shard() after each one, `keep` left whole), so
  // a frozen tensor is whole only until its shard is taken, and to plan this rank's memory so.
  void split_while_loading(model::LoadOptions& load, std::set<std::string> keep);

  // Splits every matrix (and expert stack) of the layers of `weights`, routers aside, and the
  // embedding and LM head, that does not require grad and is not named in `keep` (canonical names),
  // replacing it in `weights` by this rank's shard (a tied head with it). Again on the same weights:
  // only what is not split yet (loading calls it after each tensor, LoadOptions::after_each_load).
  void shard(model::ModelWeights& weights, const std::set<std::string>& keep);
  // Whether `name` (canonical) is held as shards.
  bool is_split(const std::string& name) const;
  // Makes the named tensors whole in `weights` again (a later phase trains them): a collective.
  void unshard(model::ModelWeights& weights, const std::set<std::string>& names);
  model::LayerWeights gather(int64_t layer, const model::LayerWeights& held) const override;
  torch::Tensor embed(const model::ModelWeights& held, const torch::Tensor& ids) const override;
  torch::Tensor head(const model::ModelWeights& held) const override;

  // Bytes of the split tensors whole, and of this rank's shards of them.
  uint64_t whole_bytes() const;
  uint64_t shard_bytes() const;
  // "X split over N ranks (Y on each)", for the note rank 0 prints.
  std::string summary() const;

 private:
  using Getter = torch::Tensor& (*)(model::ModelWeights& weights, int64_t layer);  // where a tensor is held
  struct Split {
    std::string name;
    Getter get = nullptr;
    int64_t row = 1;  // values per row: the vocabulary (embedding, head) is split by whole rows
    std::vector<int64_t> shape;
    int64_t numel = 0, chunk = 0;  // values whole; per rank (the last rank's share padded)
    torch::ScalarType dtype = torch::kFloat32;
  };
  // Replaces the tensor `get` finds in `weights` by this rank's shard (blocks of `row` values) and
  // records it as `name` (nothing if split already).
  void split(model::ModelWeights& weights, const std::string& name, Getter get, int64_t row, int64_t layer);
  static void put(model::ModelWeights& weights, const Split& split, int64_t layer, torch::Tensor value);
  // The split model-level tensor `name` ("embed", "lm_head"); null when it is whole.
  const Split* model_level(const std::string& name) const;
  // Each Split's whole tensor from this rank's shard of it (a collective).
  std::vector<torch::Tensor> whole(const std::vector<Split>& splits, const std::vector<torch::Tensor>& shards) const;

  dist::World& world_;
  bool split_packed_;
  std::map<int64_t, std::vector<Split>> splits_;  // layer (-1: model-level) -> its split tensors
};

}  // namespace moeforge::train
