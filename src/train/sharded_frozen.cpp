#include "train/sharded_frozen.h"

#include <torch/torch.h>

#include "dist/world.h"
#include "model/model_weights.h"
#include "tensor/torch_bridge.h"

namespace moeforge::train {

void ShardedFrozen::shard(model::ModelWeights& weights, const std::set<std::string>& keep) {
  const int64_t ranks = world_.size(), rank = world_.rank();
  model::for_each_runtime_tensor(weights, [&](const model::RuntimeTensor& entry, int64_t layer, const std::string& name, torch::Tensor& t) {
    // Routers stay whole: small, and read outside the forward (the drift metric's copy at the start).
    if (entry.scope != model::TensorScope::Layer || !entry.linear || entry.group == model::TensorGroup::Router || !t.defined() ||
        !t.is_floating_point() || t.requires_grad() || keep.count(name))
      return;
    auto& splits = layers_[layer];
    for (const auto& s : splits)
      if (s.name == name) return;  // split in an earlier phase
    Split s{&entry, name, t.sizes().vec(), t.numel(), (t.numel() + ranks - 1) / ranks, t.scalar_type()};
    torch::NoGradGuard no_grad;
    auto flat = t.reshape({-1});
    auto mine = torch::zeros({s.chunk}, t.options());
    const int64_t begin = std::min(rank * s.chunk, s.numel), n = std::min(s.chunk, s.numel - begin);
    if (n > 0) mine.narrow(0, 0, n).copy_(flat.narrow(0, begin, n));
    release_mapped_pages(t);  // a view of the file: the pages the copy read leave this process
    t = mine;  // the whole tensor (a private copy or a view of the file) is no longer held here
    splits.push_back(std::move(s));
  });
}

std::vector<torch::Tensor> ShardedFrozen::whole(const std::vector<Split>& splits, const std::vector<torch::Tensor>& shards) const {
  // One all-gather per tensor: its [ranks, chunk] result is the whole tensor (plus the padding) as
  // it lies, so the whole tensor is a view of it and a layer is made whole once, not copied again.
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < splits.size(); ++i) {
    const Split& s = splits[i];
    out.push_back(world_.all_gather(shards[i]).reshape({-1}).narrow(0, 0, s.numel).view(s.shape));
  }
  return out;
}

model::LayerWeights ShardedFrozen::gather(int64_t layer, const model::LayerWeights& held) const {
  auto it = layers_.find(layer);
  if (it == layers_.end()) return held;
  model::ModelWeights w = model::holding_layer(layer, held);
  std::vector<torch::Tensor> shards;
  for (const auto& s : it->second) shards.push_back(s.entry->get(w, layer));
  torch::NoGradGuard no_grad;
  const auto full = whole(it->second, shards);
  for (size_t i = 0; i < it->second.size(); ++i) it->second[i].entry->get(w, layer) = full[i];
  return w.layers[layer];
}

void ShardedFrozen::unshard(model::ModelWeights& weights, const std::set<std::string>& names) {
  // Every rank walks the same layers in the same order: the gathers pair up.
  for (auto& [layer, splits] : layers_) {
    std::vector<Split> back, stay;
    for (auto& s : splits) (names.count(s.name) ? back : stay).push_back(s);
    if (back.empty()) continue;
    std::vector<torch::Tensor> shards;
    for (const auto& s : back) shards.push_back(s.entry->get(weights, layer));
    torch::NoGradGuard no_grad;
    const auto full = whole(back, shards);
    for (size_t i = 0; i < back.size(); ++i) back[i].entry->get(weights, layer) = full[i].clone();
    splits = std::move(stay);
  }
}

bool ShardedFrozen::is_split(const std::string& name) const {
  const auto canonical = model::parse_canonical_name(name);
  auto it = layers_.find(canonical.layer);
  if (it == layers_.end()) return false;
  for (const auto& s : it->second)
    if (s.name == name) return true;
  return false;
}

uint64_t ShardedFrozen::whole_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [layer, splits] : layers_)
    for (const auto& s : splits) bytes += static_cast<uint64_t>(s.numel) * c10::elementSize(s.dtype);
  return bytes;
}

uint64_t ShardedFrozen::shard_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [layer, splits] : layers_)
    for (const auto& s : splits) bytes += static_cast<uint64_t>(s.chunk) * c10::elementSize(s.dtype);
  return bytes;
}

}  // namespace moeforge::train
