// Batch iteration over epoch orders with a (epoch, index) position that resumes exactly.
#include "data/batch_iterator.h"

#include "common/error.h"

namespace moeforge::data {

Position Position::from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("epoch") || !j.contains("index") || !j["epoch"].is_number_unsigned() ||
      !j["index"].is_number_unsigned())
    fail("data position must look like {\"epoch\": 0, \"index\": 0} (got ", j.dump(), ")");
  return {j["epoch"].get<uint64_t>(), j["index"].get<uint64_t>()};
}

uint64_t Batch::targets() const {
  // Position 0 of a row is never predicted (nothing precedes it), whatever its mask says.
  uint64_t n = 0;
  for (size_t i = 0; i < loss_mask.size(); ++i)
    if (block_size <= 0 || i % static_cast<size_t>(block_size) != 0) n += loss_mask[i];
  return n;
}

BatchIterator::BatchIterator(const Dataset& dataset, Split split, IteratorOptions options)
    : dataset_(&dataset), split_(split), options_(options) {
  if (options_.batch_size < 1) fail("batch size must be at least 1 (got ", options_.batch_size, ")");
  if (split == Split::Validation) options_.shuffle = false;
}

void BatchIterator::load_epoch(uint64_t epoch) {
  if (loaded_epoch_ == epoch) return;
  order_ = dataset_->epoch_order(split_, epoch, options_.seed, options_.shuffle);
  loaded_epoch_ = epoch;
}

void BatchIterator::seek(Position position) {
  load_epoch(position.epoch);
  if (position.index > order_.size())
    fail("data position index ", position.index, " is past the end of the epoch (", order_.size(),
         " blocks); was the checkpoint made with other data or options?");
  position_ = position;
}

bool BatchIterator::next(Batch& batch) {
  const int64_t T = dataset_->block_size();
  batch.block_size = T;
  batch.start = position_;
  batch.ids.resize(static_cast<size_t>(options_.batch_size * T));
  batch.loss_mask.resize(batch.ids.size());
  batch.domains.clear();
  batch.block_indices.clear();
  int64_t row = 0;
  while (row < options_.batch_size) {
    load_epoch(position_.epoch);
    if (position_.index >= order_.size()) {
      if (!options_.loop) break;
      if (order_.empty()) fail("the ", to_string(split_), " split has no blocks");
      position_ = {position_.epoch + 1, 0};
      continue;
    }
    uint32_t block = order_[position_.index++];
    size_t offset = static_cast<size_t>(row * T);
    batch.domains.push_back(dataset_->fill_block(split_, block, batch.ids.data() + offset, batch.loss_mask.data() + offset));
    batch.block_indices.push_back(block);
    ++row;
  }
  batch.batch_size = row;
  batch.ids.resize(static_cast<size_t>(row * T));
  batch.loss_mask.resize(batch.ids.size());
  return row > 0;
}

}  // namespace moeforge::data
