#include "train/sharded_frozen.h"

#include <torch/torch.h>

#include "common/strings.h"
#include "dist/world.h"
#include "model/model_weights.h"
#include "model/tensor_table.h"
#include "tensor/torch_bridge.h"

namespace moeforge::train {

namespace {

bool is_vocabulary(const model::RuntimeTensor& entry) {
  return entry.scope == model::TensorScope::Model && (entry.role == TensorRole::Embed || entry.role == TensorRole::LmHead);
}

// A packed MXFP4 stack's blocks and scales (not runtime-table tensors: the table's expert stacks are
// the dense ones), by name.
struct PackedPart {
  const char* name;
  torch::Tensor& (*get)(model::ModelWeights& weights, int64_t layer);
};
#define MOEFORGE_PACKED_PART(field) \
  {"experts.packed." #field, [](model::ModelWeights& w, int64_t l) -> torch::Tensor& { return w.layers[l].experts.packed.field; }}
const PackedPart kPackedParts[] = {MOEFORGE_PACKED_PART(in_blocks), MOEFORGE_PACKED_PART(in_scales), MOEFORGE_PACKED_PART(out_blocks),
                                   MOEFORGE_PACKED_PART(out_scales)};
#undef MOEFORGE_PACKED_PART

}  // namespace

bool ShardedFrozen::packed_unshared(const torch::Device& device, const dist::World& world) {
  return !device.is_cpu() || world.local_size() < world.size();
}

void ShardedFrozen::split_while_loading(model::LoadOptions& load, std::set<std::string> keep) {
  load.after_each_load = [this, keep = std::move(keep)](model::ModelWeights& w) { shard(w, keep); };
  load.is_split = [this](const std::string& name) { return is_split(name); };
  load.split_ranks = world_.size();
  load.split_packed = split_packed_;
}

void ShardedFrozen::put(model::ModelWeights& weights, const Split& split, int64_t layer, torch::Tensor value) {
  torch::Tensor& slot = split.get(weights, layer);
  const bool tied = &slot == &weights.embed && weights.lm_head.defined() && weights.lm_head.is_same(slot);
  slot = std::move(value);
  if (tied) weights.lm_head = slot;  // a tied LM head stays the embedding
}

void ShardedFrozen::split(model::ModelWeights& weights, const std::string& name, Getter get, int64_t row, int64_t layer) {
  auto& splits = splits_[layer];
  for (const auto& held : splits)
    if (held.name == name) return;  // split in an earlier phase
  torch::Tensor& t = get(weights, layer);
  Split s;
  s.name = name;
  s.get = get;
  s.row = row;
  s.shape = t.sizes().vec();
  s.numel = t.numel();
  s.chunk = (s.numel / s.row + world_.size() - 1) / world_.size() * s.row;
  s.dtype = t.scalar_type();
  torch::NoGradGuard no_grad;
  auto flat = t.reshape({-1});
  auto mine = torch::zeros({s.chunk}, t.options());
  const int64_t begin = std::min(world_.rank() * s.chunk, s.numel), n = std::min(s.chunk, s.numel - begin);
  if (n > 0) mine.narrow(0, 0, n).copy_(flat.narrow(0, begin, n));
  release_mapped_pages(t);  // a view of the file: the pages the copy read leave this process
  // The whole tensor (a private copy or a view of the file) is no longer held here.
  put(weights, s, layer, s.row > 1 ? mine.view({s.chunk / s.row, s.row}) : mine);
  splits.push_back(std::move(s));
}

void ShardedFrozen::shard(model::ModelWeights& weights, const std::set<std::string>& keep) {
  model::for_each_runtime_tensor(weights, [&](const model::RuntimeTensor& entry, int64_t layer, const std::string& name, torch::Tensor& t) {
    // Routers stay whole: small, and read outside the forward (the drift metric's copy at the start).
    const bool layer_matrix = entry.scope == model::TensorScope::Layer && entry.linear && entry.group != model::TensorGroup::Router;
    const bool vocabulary = is_vocabulary(entry);
    if (!(layer_matrix || vocabulary) || !t.defined() || !t.is_floating_point() || t.requires_grad() || keep.count(name)) return;
    // The vocabulary by whole rows, so that a rank looks up the embedding rows it holds.
    split(weights, name, entry.get, vocabulary ? t.size(1) : 1, layer);
  });
  if (!split_packed_) return;
  for (int64_t l = 0; l < static_cast<int64_t>(weights.layers.size()); ++l)
    if (weights.layers[l].experts.packed.defined())  // never trained: their trained experts are unpacked
      for (const PackedPart& part : kPackedParts) split(weights, model::canonical_name(l, part.name), part.get, 1, l);
}

const ShardedFrozen::Split* ShardedFrozen::model_level(const std::string& name) const {
  auto it = splits_.find(-1);
  if (it == splits_.end()) return nullptr;
  for (const auto& s : it->second)
    if (s.name == name) return &s;
  return nullptr;
}

torch::Tensor ShardedFrozen::embed(const model::ModelWeights& held, const torch::Tensor& ids) const {
  const Split* split = model_level("embed");
  if (!split) return torch::embedding(held.embed, ids);
  // Each rank asks the holders of its distinct ids for their rows (counts first, then the ids) and
  // gets the rows back in the same order: the exchange carries only the rows used, bit for bit.
  torch::NoGradGuard no_grad;
  const int64_t ranks = world_.size(), rows_each = split->chunk / split->row;
  const auto [unique, inverse, counts_unused] = torch::_unique2(ids.reshape({-1}), /*sorted=*/true, /*return_inverse=*/true);
  const auto owner = torch::div(unique, rows_each, "floor");
  const auto asking = torch::bincount(owner, {}, ranks).to(torch::kInt64);
  std::vector<int64_t> one(ranks, 1), send(ranks), recv(ranks);
  const auto asked = world_.all_to_all(asking.view({ranks, 1}), one, one).cpu();
  const auto asking_cpu = asking.cpu();
  for (int64_t r = 0; r < ranks; ++r) {
    send[r] = asking_cpu[r].item<int64_t>();
    recv[r] = asked[r][0].item<int64_t>();
  }
  const auto wanted = world_.all_to_all(unique, send, recv) - world_.rank() * rows_each;  // rows of this rank's shard
  const auto found = world_.all_to_all(held.embed.index_select(0, wanted), recv, send);  // [unique, H]
  auto shape = ids.sizes().vec();
  shape.push_back(split->row);
  return found.index_select(0, inverse).view(shape);
}

torch::Tensor ShardedFrozen::head(const model::ModelWeights& held) const {
  const bool tied = held.lm_head.is_same(held.embed);
  const Split* split = model_level(tied ? "embed" : "lm_head");
  if (!split) return held.lm_head;
  torch::NoGradGuard no_grad;
  return whole({*split}, {held.lm_head})[0];
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
  auto it = splits_.find(layer);
  if (it == splits_.end()) return held;
  model::ModelWeights w = model::holding_layer(layer, held);
  std::vector<torch::Tensor> shards;
  for (const auto& s : it->second) shards.push_back(s.get(w, layer));
  torch::NoGradGuard no_grad;
  const auto full = whole(it->second, shards);
  for (size_t i = 0; i < it->second.size(); ++i) it->second[i].get(w, layer) = full[i];
  return w.layers[layer];
}

void ShardedFrozen::unshard(model::ModelWeights& weights, const std::set<std::string>& names) {
  // Every rank walks the same layers in the same order: the gathers pair up.
  for (auto& [layer, splits] : splits_) {
    std::vector<Split> back, stay;
    for (auto& s : splits) (names.count(s.name) ? back : stay).push_back(s);
    if (back.empty()) continue;
    std::vector<torch::Tensor> shards;
    for (const auto& s : back) shards.push_back(s.get(weights, layer));
    torch::NoGradGuard no_grad;
    const auto full = whole(back, shards);
    for (size_t i = 0; i < back.size(); ++i) put(weights, back[i], layer, full[i].clone());
    splits = std::move(stay);
  }
}

bool ShardedFrozen::is_split(const std::string& name) const {
  const auto canonical = model::parse_canonical_name(name);
  auto it = splits_.find(canonical.layer);
  if (it == splits_.end()) return false;
  for (const auto& s : it->second)
    if (s.name == name) return true;
  return false;
}

uint64_t ShardedFrozen::whole_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [layer, splits] : splits_)
    for (const auto& s : splits) bytes += static_cast<uint64_t>(s.numel) * c10::elementSize(s.dtype);
  return bytes;
}

uint64_t ShardedFrozen::shard_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [layer, splits] : splits_)
    for (const auto& s : splits) bytes += static_cast<uint64_t>(s.chunk) * c10::elementSize(s.dtype);
  return bytes;
}

std::string ShardedFrozen::summary() const {
  return human_bytes(whole_bytes()) + " split over " + std::to_string(world_.size()) + " ranks (" + human_bytes(shard_bytes()) +
         " on each)";
}

}  // namespace moeforge::train
