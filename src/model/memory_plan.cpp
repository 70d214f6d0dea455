// Memory plan from headers: runtime shapes from the tensor table, stored dtypes from the
// safetensors headers (opening a shard maps it and parses its header; no tensor bytes are read).
#include "model/memory_plan.h"

#include <cstdio>
#include <string>
#include <vector>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/strings.h"
#include "common/system_memory.h"
#include "io/checkpoint_store.h"
#include "model/moe_experts.h"
#include "model/tensor_table.h"

namespace moeforge::model {
namespace {

uint64_t elements(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// The stored role a runtime tensor is a direct view of (same shape and layout), if any.
bool viewable_role(const ModelSpec& spec, const PlannedTensor& t, TensorRole* role) {
  const RuntimeTensor& e = *t.entry;
  switch (e.source) {
    case TensorSource::Role: *role = e.role; return true;
    case TensorSource::GateUpRows:  // [gate; up] is a copy unless there is no gate
      if (spec_has_role(spec, e.gate_role, t.layer)) return false;
      *role = e.role;
      return true;
    case TensorSource::Experts:
      if (e.role == TensorRole::ExpertsDownBias) {  // [E, H] in every fused layout
        *role = e.role;
        return spec.moe.layout != ExpertLayout::PerExpert;
      }
      if (spec.moe.layout != ExpertLayout::FusedConcat || e.role == TensorRole::ExpertsGateUpBias) return false;
      *role = e.role;  // FusedConcat gate_up [E, 2F, H] and down [E, H, F] are the runtime layout
      return true;
  }
  return false;
}

}  // namespace

MemoryPlan plan_model_memory(const ModelSpec& spec, const CheckpointStore& store, DType run_dtype, bool cpu,
                             bool map_frozen, bool packed_mxfp4, int split_ranks, bool split_packed) {
  MemoryPlan plan;
  std::vector<uint64_t> layer_split(spec.num_layers + 1, 0);  // whole bytes of each layer's split tensors; the last slot: the split head's
  const uint64_t bytes_per = dtype_size(run_dtype);
  const bool packed = packed_mxfp4 && spec.moe.layout == ExpertLayout::Mxfp4;
  std::vector<uint64_t> layer_mapped(spec.num_layers, 0);
  // One rank's shard of `units` blocks of `unit_bytes` (the last rank's share padded, as train/sharded_frozen splits).
  auto shard_of = [&](uint64_t units, uint64_t unit_bytes) { return (units + split_ranks - 1) / split_ranks * unit_bytes; };
  auto add_mapped = [&](const PlannedTensor& t, uint64_t bytes) {
    plan.mapped += bytes;
    (t.layer >= 0 ? layer_mapped[t.layer] : plan.model_level_mapped) += bytes;
  };
  for (const PlannedTensor& t : planned_tensors(spec)) {
    if (packed && is_expert_weight_stack(*t.entry)) {  // blocks + one scale per 32 values
      const uint64_t bytes = elements(t.shape) / 32 * 17;
      if (split_ranks > 1 && split_packed) {  // private shards, and the layer's whole stack while it runs
        plan.weights += shard_of(bytes, 1);
        layer_split[t.layer] += bytes;
        continue;
      }
      plan.weights += bytes;
      if (cpu) add_mapped(t, bytes);
      continue;
    }
    const uint64_t bytes = elements(t.shape) * bytes_per;
    const bool vocabulary = t.entry->role == TensorRole::Embed || t.entry->role == TensorRole::LmHead;
    if (split_ranks > 1 && t.layer < 0 && vocabulary) {  // split by rows; the head made whole for the loss's pass
      const uint64_t rows = static_cast<uint64_t>(t.shape[0]);
      plan.weights += shard_of(rows, bytes / rows);
      if (t.entry->role == TensorRole::LmHead || spec.tie_word_embeddings) layer_split[spec.num_layers] = bytes;
      continue;
    }
    if (split_ranks > 1 && t.layer >= 0 && t.entry->linear && t.entry->group != TensorGroup::Router) {
      plan.weights += shard_of(bytes, 1);  // this rank's shard, a private copy
      layer_split[t.layer] += bytes;
      continue;
    }
    plan.weights += bytes;
    TensorRole role;
    if (cpu && map_frozen && viewable_role(spec, t, &role)) {
      auto stored = store.find(tensor_name(spec, role, t.layer));
      if (stored && stored->info->dtype == run_dtype) add_mapped(t, bytes);
    }
  }
  for (uint64_t bytes : layer_mapped) plan.largest_layer_mapped = std::max(plan.largest_layer_mapped, bytes);
  // The layer made whole while it runs, or the head (the last slot) during the loss: never both.
  plan.weights += *std::max_element(layer_split.begin(), layer_split.end());
  if (spec.moe.layout == ExpertLayout::Mxfp4) {  // one expert decoded to float at a time: gate, up, down, rows
    const uint64_t FH = static_cast<uint64_t>(spec.moe.moe_intermediate_size) * spec.hidden_size;
    // packed: float decode + run-dtype copy, per expert running at once (small experts run concurrently)
    const uint64_t at_once = cpu ? static_cast<uint64_t>(concurrent_expert_workers(static_cast<int64_t>(3 * FH))) : 1;
    plan.transient = packed ? 3 * FH * (4 + bytes_per) * at_once : 5 * FH * 4;
  }
  plan.runtime = kProcessRuntimeBytes;
  if (!cpu) plan.device = plan.weights;
  return plan;
}

std::string describe(const MemoryPlan& plan, const std::string& what) {
  std::string line = cat("memory plan for ", what, ": weights ", format_gb(plan.weights), " (", format_gb(plan.mapped),
                         " mapped from the file)");
  if (plan.device) line += cat(" on the device");
  line += cat(", load buffers ", format_gb(plan.transient), ", runtime ", format_gb(plan.runtime));
  if (plan.work) line += cat(", ", plan.work_what);
  line += cat("; predicted host peak ", format_gb(plan.host_peak()), plan.work ? "" : " plus activations");
  return line;
}

uint64_t rank_budget(uint64_t budget, int local_ranks, uint64_t shared_bytes) {
  if (budget == 0 || local_ranks <= 1) return budget;
  const uint64_t shared = std::min(shared_bytes, budget);
  return shared + (budget - shared) / static_cast<uint64_t>(local_ranks);
}

void check_memory_budget(const MemoryPlan& plan, uint64_t budget_bytes, const std::string& what, bool streamable, int local_ranks,
                         uint64_t machine_budget) {
  if (budget_bytes == 0 || plan.host_peak() <= budget_bytes) return;
  const std::string streamed = streamable ? cat("; streamed one layer at a time it still needs about ", format_gb(plan.streamed_peak())) : "";
  const std::string budget =
      local_ranks > 1 ? cat("this rank's share of the memory budget is ", format_gb(budget_bytes), " (", format_gb(machine_budget),
                            " for the ", local_ranks, " processes of this run on this machine, the mapped weights counted once; "
                            "--max-memory, default: MemAvailable)")
                      : cat("the memory budget is ", format_gb(budget_bytes), " (--max-memory; default: MemAvailable)");
  fail(what, ": needs about ", format_gb(plan.host_peak()), " of memory (weights ", format_gb(plan.device ? 0 : plan.weights),
       " + load buffers ", format_gb(plan.transient), " + runtime ", format_gb(plan.runtime),
       plan.work ? cat(" + ", plan.work_what) : std::string(), ") but ", budget, streamed);
}

}  // namespace moeforge::model
