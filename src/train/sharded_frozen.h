// ZeRO-3 for the frozen weights (`train --zero 3`): every frozen layer tensor is split over the
// ranks, each keeping 1/N of its values (a private flat shard); a layer's shards are all-gathered
// just before it runs and dropped after, and the layer is recomputed in the backward (model/
// layer_recompute.h), so a rank holds about 1/N of the frozen layers plus one layer made whole.
// What a phase trains, and what earlier phases changed, stays whole (its gradients, masters and
// optimiser state are sharded by ZeRO-2). Model-level tensors (embeddings, head) and packed MXFP4
// experts (mapped from the file, shared by the local ranks through the page cache) are not split.
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
  explicit ShardedFrozen(dist::World& world) : world_(world) {}

  // Splits every matrix (and expert stack) of the layers of `weights`, routers aside, that does not
  // require grad and is not named in `keep` (canonical names), replacing it in `weights` by this
  // rank's shard. Again on the same weights: only what is not split yet (loading calls it after each
  // tensor, LoadOptions::after_each_load).
  void shard(model::ModelWeights& weights, const std::set<std::string>& keep);
  // Whether `name` (canonical) is held as shards.
  bool is_split(const std::string& name) const;
  // Makes the named tensors whole in `weights` again (a later phase trains them): a collective.
  void unshard(model::ModelWeights& weights, const std::set<std::string>& names);
  model::LayerWeights gather(int64_t layer, const model::LayerWeights& held) const override;

  // Bytes of the split tensors whole, and of this rank's shards of them.
  uint64_t whole_bytes() const;
  uint64_t shard_bytes() const;

 private:
  struct Split {
    const model::RuntimeTensor* entry = nullptr;
    std::string name;
    std::vector<int64_t> shape;
    int64_t numel = 0, chunk = 0;  // values whole; per rank (the last rank's share padded)
    torch::ScalarType dtype = torch::kFloat32;
  };
  // Each Split's whole tensor from this rank's shard of it (a collective).
  std::vector<torch::Tensor> whole(const std::vector<Split>& splits, const std::vector<torch::Tensor>& shards) const;

  dist::World& world_;
  std::map<int64_t, std::vector<Split>> layers_;  // layer -> its split tensors
};

}  // namespace moeforge::train
