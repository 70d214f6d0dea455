// Every tensor a spec implies, with its on-disk name, role, shape and allowed dtypes — one list
// that drives validation, parameter counting, loading and writing (gemma.cpp's ForEachTensor).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "arch/tensor_role.h"
#include "io/dtype.h"

namespace moeforge {

struct ExpectedTensor {
  std::string name;
  TensorRole role = TensorRole::Count;
  int64_t layer = -1;   // -1 for model-level tensors
  int64_t expert = -1;  // >= 0 only for per-expert tensors (PerExpert layout)
  std::vector<int64_t> shape;
  std::vector<DType> dtypes;     // allowed on disk (F32/F16/BF16 for weights, U8 for MXFP4)
  uint64_t logical_params = 0;   // parameters it stands for: numel; MXFP4 blocks 2 per byte; scales 0
  bool routed_experts = false;   // holds routed-expert parameters (one expert, or all E when fused)
};

// Shape of `role` for this spec, e.g. Q -> [num_heads*head_dim, H]; fused and MXFP4 roles follow
// spec.moe.layout. Throws for roles the spec does not have.
std::vector<int64_t> role_shape(const ModelSpec& spec, TensorRole role);
// Whether the spec has this role at `layer` (-1 for model-level roles), e.g. QBias iff qkv_bias,
// Router iff is_moe[layer], ExpertsGateUp iff the layout is fused, LmHead iff not tied.
bool spec_has_role(const ModelSpec& spec, TensorRole role, int64_t layer);

// Visits every expected tensor in a stable order: embed, position embed, then layer by layer
// (norms, attention, MLP or router/experts/shared expert), final norm, lm_head.
void for_each_tensor(const ModelSpec& spec, const std::function<void(const ExpectedTensor&)>& visit);
std::vector<ExpectedTensor> expected_tensors(const ModelSpec& spec);

}  // namespace moeforge
