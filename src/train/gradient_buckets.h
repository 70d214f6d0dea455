// Data parallel with the gradient all-reduce overlapping the backward (the idea of DDP's Reducer,
// over dist::World's collectives): the trained leaves are grouped into buckets of about 25 MB;
// during the backward of a step's last micro-batch on this rank, a post-accumulate hook on each leaf
// counts it done, and a bucket whose leaves are all done starts its all-reduce while the backward
// goes on. Buckets start strictly in their order, so every rank issues the same collectives in the
// same order; finish() starts those the backward did not complete (leaves this rank's backward
// never reached, or reached before it: the head's own backward) and waits for all. The first step
// buckets the leaves in reverse order; after it, as DDP does, the buckets are rebuilt in the order
// rank 0's backward completed them (broadcast, so every rank buckets alike), those it never
// completed last. The sums are those of all_reduce_gradients. At most kInFlight buckets are being
// summed at once (starting another first waits for the oldest and writes its sums back), so the
// fp32 copies in flight stay a few buckets, not a second copy of every gradient.
#pragma once

#include <memory>
#include <vector>

#include "dist/world.h"
#include "train/trainable.h"

namespace moeforge::train {

class GradientBuckets {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 << 20;  // DDP's default bucket_cap_mb
  static constexpr size_t kInFlight = 4;
  GradientBuckets(dist::World& world, std::vector<Leaf>& leaves, int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientBuckets();  // the hooks go with it
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // Between arm() and disarm() every leaf accumulates its gradient at most once (one backward call)
  // and that gradient is its last of the step.
  void arm() { armed_ = true; }
  void disarm() { armed_ = false; }
  // Every bucket summed over ranks (in place in the leaves' gradients); resets for the next step.
  void finish();
  size_t buckets() const { return buckets_.size(); }

  void leaf_done(size_t leaf);  // the hook's entry

 private:
  struct Bucket {
    std::vector<size_t> leaves;
    size_t waiting = 0;  // leaves not yet done this step
    std::unique_ptr<dist::PendingCollective> pending;
  };
  void build(const std::vector<size_t>& order, int64_t bucket_bytes);
  void start(size_t bucket);
  void land_oldest();
  dist::World& world_;
  std::vector<Leaf>& leaves_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // per leaf
  std::vector<bool> done_;         // per leaf, this step
  size_t next_ = 0;                // the next bucket to start
  size_t landed_ = 0;              // buckets before this one are summed and written back
  bool armed_ = false;
  int64_t bucket_bytes_;
  bool rebuilt_ = false;
  std::vector<size_t> seen_;       // first step: the leaves in the order the backward completed them
};

}  // namespace moeforge::train
