// Batches of blocks for training and evaluation, with a resumable position: save position() in a
// training checkpoint, construct a new iterator with the same options and seek() to it, and the
// batches that follow are exactly those the original would have produced.
//
//   BatchIterator it(dataset, Split::Train, {.batch_size = 8, .seed = 42});
//   Batch b;
//   while (it.next(b)) { /* b.ids [B*T] row-major, b.loss_mask [B*T], b.domains [B] */ }
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/dataset.h"

namespace moeforge::data {

struct IteratorOptions {
  int64_t batch_size = 8;   // blocks per batch
  uint64_t seed = 0;        // epoch orders (shuffle, mixture draws)
  bool shuffle = true;      // train split only; validation is always in natural order
  // true: endless (epochs follow each other; a batch may span two epochs); the default for Train.
  // false: next() returns false after the last block of the epoch; the last batch may be short.
  bool loop = true;
};

// Where an iterator stands: the next block is epoch_order(epoch)[index].
struct Position {
  uint64_t epoch = 0;
  uint64_t index = 0;
  nlohmann::json to_json() const { return {{"epoch", epoch}, {"index", index}}; }
  static Position from_json(const nlohmann::json& j);
  bool operator==(const Position& o) const { return epoch == o.epoch && index == o.index; }
};

struct Batch {
  int64_t batch_size = 0;           // rows actually filled (short only at the end when !loop)
  int64_t block_size = 0;
  std::vector<int32_t> ids;         // [batch_size * block_size], row-major
  std::vector<uint8_t> loss_mask;   // [batch_size * block_size]; see Block::loss_mask
  std::vector<int32_t> domains;     // [batch_size] index into Dataset::domains()
  std::vector<uint32_t> block_indices;  // [batch_size] natural block index of each row
  Position start;                   // position before this batch
  uint64_t targets() const;         // mask-1 tokens the next-token loss predicts (each row's position 0 excluded)
};

class BatchIterator {
 public:
  // Evaluation: pass {.loop = false} for one pass. Validation ignores shuffle (natural order).
  BatchIterator(const Dataset& dataset, Split split, IteratorOptions options = {});

  // Fills `batch`; false when nothing is left (only when !loop).
  bool next(Batch& batch);
  Position position() const { return position_; }
  // Continue from a saved position (epoch >= 0, index <= epoch length). Throws on a bad position.
  void seek(Position position);
  // Blocks per epoch of this split.
  size_t epoch_size() const { return dataset_->num_blocks(split_); }
  const IteratorOptions& options() const { return options_; }

 private:
  void load_epoch(uint64_t epoch);
  const Dataset* dataset_;
  Split split_;
  IteratorOptions options_;
  Position position_;
  uint64_t loaded_epoch_ = UINT64_MAX;
  std::vector<uint32_t> order_;
};

}  // namespace moeforge::data
