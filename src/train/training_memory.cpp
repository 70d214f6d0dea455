// The training half of the memory plan: what TrainableSet, the optimiser and autograd hold, counted
// from the plan's selections (train/trainable.cpp is what these figures describe).
#include "train/training_memory.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "common/strings.h"
#include "model/memory_plan.h"
#include "model/tensor_table.h"
#include "train/trainable.h"

namespace moeforge::train {
namespace {

// Measured: a 3-layer run training only its routers peaks ~0.25 GB above `stats` of the same model
// (data pipeline, autograd graph, metrics and allocator arenas); rounded up.
constexpr uint64_t kTrainerAllowance = 300ull << 20;

uint64_t product(const std::vector<int64_t>& shape, size_t from = 0) {
  uint64_t n = 1;
  for (size_t d = from; d < shape.size(); ++d) n *= static_cast<uint64_t>(shape[d]);
  return n;
}

struct TensorFacts {
  const ParamInfo* param = nullptr;
  bool stacked = false;      // routed experts along dim 0
  bool packed = false;       // an MXFP4 weight stack held packed: only its unpacked rows are dense
  uint64_t per_unit = 0;     // elements of one expert (stacked) or of the whole tensor
};

// Elements a phase's leaves hold for one selected tensor, and whether the leaf is the base itself.
struct LeafSize {
  uint64_t elements = 0;
  bool is_base = false;  // the whole tensor trains: its leaf is the base (fp32) or its master (bf16)
};

LeafSize leaf_size(const TensorFacts& f, const std::vector<bool>& mask, uint64_t base_elements, const Phase& phase) {
  const std::vector<int64_t>& shape = f.param->shape;
  const uint64_t units = f.stacked ? selected_units(mask).size() : 1;
  const int64_t dims = static_cast<int64_t>(shape.size()) - (f.stacked ? 1 : 0);
  if (phase.method == Method::Lora && is_lora_target(f.param->name, dims, phase.lora)) {
    const uint64_t out_dim = shape[shape.size() - 2], in_dim = shape.back();
    return {static_cast<uint64_t>(phase.lora.rank) * (out_dim + in_dim) * units, false};
  }
  const uint64_t selected = f.per_unit * units;
  return {selected, selected == base_elements};
}

// What the most loaded of `ranks` holds of `total` when parts of at most `largest` are dealt greedily
// to the least loaded rank: never more than the even share plus one part.
uint64_t greedy_share(uint64_t total, uint64_t ranks, uint64_t largest) {
  return ranks > 1 ? std::min(total, (total + ranks - 1) / ranks + largest) : total;
}

// Optimiser state per leaf element: AdamW two fp32 moments; Adafactor factored second moments for
// matrices (rows + columns, negligible) or a full one for vectors, plus momentum when beta1 > 0.
uint64_t optimizer_bytes(const Phase& phase, uint64_t elements, size_t dims) {
  if (phase.optimizer.kind == OptimizerKind::AdamW) return 8 * elements;
  const uint64_t momentum = phase.optimizer.beta1 > 0 ? 4 * elements : 0;
  return momentum + (dims >= 2 ? 0 : 4 * elements);
}

// Activations of one micro-batch. Layers below the lowest trained tensor save nothing (no tensor
// there needs a gradient); each layer above saves its attention and MLP inputs and outputs in the
// run dtype, the materialised fp32 scores of eager attention (sinks) and, for MoE layers, the top-k
// copies of the expert inputs and intermediates. The logits are held in fp32 three times (logits,
// log-softmax, their gradient) plus the run-dtype copy.
uint64_t activation_bytes(const ModelSpec& spec, const Phase& phase, int64_t lowest_layer, uint64_t run_bytes, bool online_teacher,
                          bool eager_attention) {
  const uint64_t T = static_cast<uint64_t>(phase.batch_size) * static_cast<uint64_t>(phase.seq_len);
  const uint64_t H = spec.hidden_size, V = spec.vocab_size;
  const uint64_t q = spec.q_dim(), kv = spec.kv_dim();
  uint64_t total = T * V * (12 + run_bytes);
  if (online_teacher) total += T * V * 4 * 2;  // teacher logits and its probabilities
  for (int64_t l = lowest_layer; l < spec.num_layers; ++l) {
    uint64_t per_token = 6 * H + 3 * q + 4 * kv;  // norms, residuals, q/k/v (before and after RoPE), attention output
    const bool moe = spec.has_moe() && static_cast<size_t>(l) < spec.is_moe.size() && spec.is_moe[l];
    if (moe) {
      const uint64_t F = spec.moe.moe_intermediate_size, k = spec.moe.top_k;
      per_token += k * (2 * H + 5 * F) + 2 * spec.moe.num_experts;  // gathered input, gate/up, activation, output; router
      if (spec.moe.shared_intermediate_size > 0) per_token += 5 * static_cast<uint64_t>(spec.moe.shared_intermediate_size);
    } else {
      per_token += 5 * static_cast<uint64_t>(spec.intermediate_size);
    }
    total += T * per_token * run_bytes;
    if (eager_attention) {  // [B, heads, S, S + 1] in fp32
      const uint64_t S = phase.seq_len;
      total += static_cast<uint64_t>(phase.batch_size) * spec.num_heads * S * (S + 1) * 12;  // scores, softmax, run-dtype probs
    }
  }
  return total;
}

}  // namespace

TrainingMemory plan_training_memory(const ModelSpec& spec, const TrainingPlan& plan, bool packed_mxfp4, bool online_teacher,
                                    const DataParallelShape& data_parallel) {
  TrainingMemory memory;
  const uint64_t ranks = static_cast<uint64_t>(std::max(1, data_parallel.ranks));
  memory.optimizer_shards = data_parallel.zero_stage >= 1 ? static_cast<int>(ranks) : 1;
  const uint64_t shards = static_cast<uint64_t>(memory.optimizer_shards);
  const bool bf16 = plan.recipe.precision == "bf16";
  const uint64_t run_bytes = bf16 ? 2 : 4;
  const bool packed_layout = packed_mxfp4 && spec.moe.layout == ExpertLayout::Mxfp4;
  const std::vector<ParamInfo> params = describe_parameters(spec);
  std::map<std::string, TensorFacts> facts;
  for (const ParamInfo& p : params) {
    const model::RuntimeTensor* entry = model::find_runtime_tensor(p.local_name);
    TensorFacts f;
    f.param = &p;
    f.stacked = p.num_experts > 0;
    f.packed = packed_layout && entry && model::is_expert_weight_stack(*entry);
    f.per_unit = product(p.shape, f.stacked ? 1 : 0);
    facts[p.name] = f;
  }
  // What any phase trains: masters and unpacked rows live for the whole run.
  Selection every_phase;
  for (const Selection& s : plan.selections) merge_selection(every_phase, s);
  std::map<std::string, uint64_t> base_elements;  // the dense tensor a trained parameter is
  // Saved activations start at the lowest trained layer; the embedding's gradient needs every layer,
  // the final norm's and LM head's none.
  int64_t lowest_layer = spec.num_layers;
  for (const auto& [name, mask] : every_phase) {
    const TensorFacts& f = facts.at(name);
    const uint64_t dense = f.packed ? f.per_unit * selected_units(mask).size() : f.per_unit * (f.stacked ? f.param->shape[0] : 1);
    base_elements[name] = dense;
    if (f.packed) memory.unpacked += dense * run_bytes;
    if (bf16) memory.masters += dense * 4;
    if (f.param->group == model::TensorGroup::Embedding) lowest_layer = 0;
    else if (f.param->layer >= 0) lowest_layer = std::min(lowest_layer, f.param->layer);
  }
  // Every family's training attention is fused now (GPT-OSS sinks too: the sink as one more key of
  // value 0, model/transformer.cpp), so no [B, heads, S, S + 1] scores are kept for the backward.
  const bool eager = false;
  for (size_t p = 0; p < plan.recipe.phases.size(); ++p) {
    const Phase& phase = plan.recipe.phases[p];
    uint64_t state = 0, buffers = 0, trained = 0, lora_transient = 0, moments = 0, largest_moments = 0, grads = 0, largest_grad = 0;
    for (const auto& [name, mask] : plan.selections[p]) {
      const TensorFacts& f = facts.at(name);
      const uint64_t base = base_elements.at(name);
      const LeafSize leaf = leaf_size(f, mask, base, phase);
      trained += leaf.elements;
      const size_t dims = f.param->shape.size() - (f.stacked ? 1 : 0);
      state += (leaf.is_base ? 0 : 4 * leaf.elements) + 4 * leaf.elements;
      grads += 4 * leaf.elements;
      largest_grad = std::max(largest_grad, 4 * leaf.elements);
      const uint64_t leaf_moments = optimizer_bytes(phase, leaf.elements, dims);
      moments += leaf_moments;
      largest_moments = std::max(largest_moments, leaf_moments);
      // The weight the forward sees (base with the slice or LoRA delta applied, or the master cast
      // to bf16) and its gradient, both in the run dtype; an fp32 whole tensor is its own leaf.
      if (!(leaf.is_base && !bf16)) buffers += 2 * base * run_bytes;
      // LoRA forms its full-shape delta (fp32, then the run dtype) and, in backward, the delta's
      // gradient the same way: one tensor at a time.
      if (phase.method == Method::Lora && !leaf.is_base && leaf.elements < base)
        lora_transient = std::max(lora_transient, base * (4 + run_bytes) * 2);
    }
    buffers += lora_transient;
    state += greedy_share(moments, shards, largest_moments);  // ZeRO-1/2: the leaves' owners
    memory.optimizer = std::max(memory.optimizer, state);
    if (ranks > 1) {
      uint64_t copies = grads;  // --bucket-mb 0: one bucket of every gradient
      if (data_parallel.zero_stage >= 2)  // reduced one owner's gradients at a time
        copies = greedy_share(grads, ranks, largest_grad);
      else if (data_parallel.bucket_bytes > 0)  // a bucket holds up to bucket_bytes, or one larger gradient
        copies = std::min(grads, data_parallel.buckets_in_flight * std::max(static_cast<uint64_t>(data_parallel.bucket_bytes), largest_grad));
      memory.buckets = std::max(memory.buckets, copies);
    }
    memory.step_buffers = std::max(memory.step_buffers, buffers);
    memory.trained_params = std::max(memory.trained_params, trained);
    const bool teacher = online_teacher && phase.losses.distill.enabled;
    memory.activations = std::max(memory.activations, activation_bytes(spec, phase, lowest_layer, run_bytes, teacher, eager));
  }
  // Export: every trained tensor in fp32, encoded and then serialised (two copies), after the
  // phases' leaves and optimiser state are gone.
  for (const auto& [name, elements] : base_elements) memory.export_buffers += 2 * 4 * elements;
  memory.runtime = kTrainerAllowance;
  return memory;
}

std::string describe(const TrainingMemory& m) {
  std::string line = cat("training state ", format_gb(m.total() - m.activations - m.runtime), " (");
  std::vector<std::string> parts;
  if (m.masters) parts.push_back(cat("fp32 masters ", format_gb(m.masters)));
  parts.push_back(cat("gradients and optimiser ", format_gb(m.optimizer),
                      m.optimizer_shards > 1 ? cat(", moments sharded over ", m.optimizer_shards, " ranks") : std::string()));
  parts.push_back(cat("per-step weights ", format_gb(m.step_buffers)));
  if (m.buckets) parts.push_back(cat("gradient buckets ", format_gb(m.buckets)));
  if (m.unpacked) parts.push_back(cat("unpacked experts ", format_gb(m.unpacked)));
  if (m.export_buffers > m.steps()) parts.push_back(cat("export ", format_gb(m.export_buffers), ", the largest"));
  return line + join(parts, ", ") + cat(") + activations ", format_gb(m.activations), " + trainer ", format_gb(m.runtime), " for ",
                                        m.trained_params, " trained parameters");
}

}  // namespace moeforge::train
