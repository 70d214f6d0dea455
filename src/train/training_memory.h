// What a training run needs beyond the model's own weights, predicted from the training plan and
// the spec before any weight is read (model/memory_plan.h predicts the weights). `train` adds it to
// the load plan, so a selection that cannot fit is refused before loading; `--list-params` and
// `info` print it. Torch-free header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "arch/model_spec.h"
#include "train/training_plan.h"

namespace moeforge::train {

struct TrainingMemory {
  uint64_t unpacked = 0;       // dense run-dtype rows of the MXFP4 experts any phase trains (beside the packed stack)
  uint64_t masters = 0;        // fp32 masters of trained tensors (precision bf16), kept across phases
  uint64_t optimizer = 0;      // largest phase: trained slices / LoRA factors, fp32 gradients, optimiser moments
  uint64_t step_buffers = 0;   // largest phase: each trained tensor's differentiable weight and its gradient, per step
  uint64_t buckets = 0;        // several ranks: the fp32 buckets the gradients are summed in (in flight together)
  uint64_t activations = 0;    // largest micro-batch: tensors saved for backward, logits and their gradient
  uint64_t export_buffers = 0; // the end: trained tensors encoded for trainable.safetensors (step state freed by then)
  uint64_t runtime = 0;        // the trainer itself beyond the forward commands' allowance (data, autograd, metrics)
  uint64_t trained_params = 0; // largest phase's trained parameters (LoRA: the factors)
  int optimizer_shards = 1;    // ZeRO-1/2 ranks: `optimizer` holds one rank's share of the moments
  uint64_t steps() const { return optimizer + step_buffers + buckets + activations; }
  uint64_t total() const { return unpacked + masters + std::max(steps(), export_buffers) + runtime; }
};

// `packed_mxfp4`: frozen MXFP4 experts stay packed (train's default; false with --dequantize).
// `online_teacher`: a distillation teacher runs beside the student (its logits per micro-batch; the
// teacher's own weights are planned when it loads).
// One rank of a data-parallel run (train/data_parallel.h): `ranks` > 1 adds the fp32 buckets the
// gradients are summed in (train/gradient_buckets.h: a few in flight during the backward; with
// `bucket_bytes` 0 one bucket of every gradient after it; ZeRO-2: the largest owner's share); with
// `zero_stage` >= 1 each rank holds the moments of the leaves it owns (dealt greedily by size), at
// most its even share plus the largest leaf's. Gradients are whole on every rank during the backward.
struct DataParallelShape {
  int ranks = 1;
  int zero_stage = 0;
  int64_t bucket_bytes = 25 << 20;  // GradientBuckets::kDefaultBucketBytes
  uint64_t buckets_in_flight = 4;   // GradientBuckets::kInFlight
};
// From train's flags: --nproc / the world's size, --zero, --bucket-mb (MiB, as the trainer reads it).
inline DataParallelShape data_parallel_shape(int ranks, int zero_stage, double bucket_mb) {
  DataParallelShape shape;
  shape.ranks = ranks;
  shape.zero_stage = zero_stage;
  shape.bucket_bytes = static_cast<int64_t>(bucket_mb * (1 << 20));
  return shape;
}
TrainingMemory plan_training_memory(const ModelSpec& spec, const TrainingPlan& plan, bool packed_mxfp4, bool online_teacher,
                                    const DataParallelShape& data_parallel = {});

// "training state X GB (masters A, optimiser B, per-step weights C, unpacked experts D) + activations E"
std::string describe(const TrainingMemory& memory);

}  // namespace moeforge::train
