#include "train/gradient_buckets.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "common/error.h"
#include "train/data_parallel.h"
#include "train/training_memory.h"

namespace moeforge::train {

static_assert(GradientBuckets::kInFlight == DataParallelShape{}.buckets_in_flight &&
              GradientBuckets::kDefaultBucketBytes == DataParallelShape{}.bucket_bytes, "the memory plan counts these buckets");

namespace {
struct LeafDoneHook : torch::autograd::PostAccumulateGradHook {
  LeafDoneHook(GradientBuckets* owner, size_t leaf) : owner(owner), leaf(leaf) {}
  void operator()(const torch::autograd::Variable&) override { owner->leaf_done(leaf); }
  GradientBuckets* owner;
  size_t leaf;
};
}  // namespace

GradientBuckets::GradientBuckets(dist::World& world, std::vector<Leaf>& leaves, int64_t bucket_bytes)
    : world_(world), leaves_(leaves), bucket_of_(leaves.size()), done_(leaves.size(), false), bucket_bytes_(bucket_bytes) {
  if (!world.distributed()) return;
  std::vector<size_t> order;
  for (size_t k = leaves.size(); k-- > 0;) order.push_back(k);  // the last layers' leaves first: the backward reaches them first
  build(order, bucket_bytes);
  for (size_t k = 0; k < leaves.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(leaves[k].tensor, std::make_unique<LeafDoneHook>(this, k));
}

void GradientBuckets::build(const std::vector<size_t>& order, int64_t bucket_bytes) {
  buckets_.clear();
  int64_t bytes = 0;
  for (size_t k : order) {
    const int64_t n = leaves_[k].tensor.numel() * 4;  // the bucket is fp32
    if (buckets_.empty() || (bytes > 0 && bytes + n > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().leaves.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += n;
  }
  for (auto& b : buckets_) b.waiting = b.leaves.size();
}

GradientBuckets::~GradientBuckets() {
  if (!world_.distributed()) return;
  for (auto& leaf : leaves_) torch::autograd::impl::set_post_acc_grad_hooks(leaf.tensor, nullptr);
}

void GradientBuckets::leaf_done(size_t leaf) {
  if (!armed_) return;
  if (done_[leaf]) fail("internal: ", leaves_[leaf].name, " accumulated a second gradient after its all-reduce started");
  done_[leaf] = true;
  if (!rebuilt_) seen_.push_back(leaf);
  if (--buckets_[bucket_of_[leaf]].waiting > 0) return;
  while (next_ < buckets_.size() && buckets_[next_].waiting == 0) start(next_++);
}

void GradientBuckets::land_oldest() {
  Bucket& oldest = buckets_[landed_++];
  oldest.pending->wait();  // its leaves are done: the sums may land while the backward goes on
  oldest.pending.reset();
  oldest.waiting = oldest.leaves.size();
}

void GradientBuckets::start(size_t b) {
  while (b - landed_ >= kInFlight) land_oldest();
  std::vector<torch::Tensor> grads;
  for (size_t k : buckets_[b].leaves) grads.push_back(grad_or_zeros(leaves_[k]));
  buckets_[b].pending = world_.all_reduce_sum_async(std::move(grads));
}

void GradientBuckets::finish() {
  if (!world_.distributed()) return;
  while (next_ < buckets_.size()) start(next_++);
  while (landed_ < buckets_.size()) land_oldest();
  next_ = 0;
  landed_ = 0;
  armed_ = false;
  if (!rebuilt_) {  // rank 0's completion order, then the leaves it never completed in reverse order
    std::vector<int64_t> order;
    for (size_t k : seen_) order.push_back(static_cast<int64_t>(k));
    for (size_t k = leaves_.size(); k-- > 0;)
      if (!done_[k]) order.push_back(static_cast<int64_t>(k));
    std::vector<torch::Tensor> shared{torch::tensor(order, torch::kInt64)};
    world_.broadcast(shared, 0);
    const int64_t* o = shared[0].data_ptr<int64_t>();
    build(std::vector<size_t>(o, o + shared[0].numel()), bucket_bytes_);
    rebuilt_ = true;
    seen_.clear();
  }
  std::fill(done_.begin(), done_.end(), false);
}

}  // namespace moeforge::train
