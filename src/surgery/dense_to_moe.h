// The plan shared by upcycle and merge: walk the output MoE spec's tensors; copy every non-FFN
// tensor from the base (or let the caller produce it), write each MoE layer's experts one expert at
// a time from a caller-supplied generator, create routers, q/k norms the target adds, shared experts.
#pragma once

#include <functional>
#include <vector>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/model_spec.h"
#include "surgery/output_plan.h"

namespace moeforge::surgery {

struct DenseToMoe {
  const CheckpointStore* base = nullptr;
  ModelSpec base_spec;  // dense
  ModelSpec out_spec;   // MoE, per-expert layout
  // Calls emit(e, weights) for every expert e of MoE layer l, in order (one expert alive at a time).
  std::function<void(int64_t l, const std::function<void(int64_t e, const ExpertWeights&)>& emit)> experts;
  // Router rows [E, H] for MoE layer l.
  std::function<std::vector<float>(int64_t l)> router;
  // Shared expert of layer l (qwen2_moe target with a shared expert).
  std::function<ExpertWeights(int64_t l)> shared;
  // Optional: produce a non-FFN tensor instead of copying it from the base (merge --non-ffn average).
  // Return false to fall back to the byte copy.
  std::function<bool(const ExpectedTensor& out, const std::string& base_name, OutputPlan& plan)> non_ffn;
};

OutputPlan build_dense_to_moe_plan(const DenseToMoe& job);

}  // namespace moeforge::surgery
