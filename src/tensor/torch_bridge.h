// Bridges the checkpoint store and libtorch: views stored tensors as torch::Tensor (zero-copy when
// the dtype maps directly) and writes torch tensors back in safetensors dtypes.
#pragma once

#include <torch/types.h>

#include <string>

#include "io/checkpoint_store.h"
#include "io/dtype.h"

namespace moeforge {

// The torch scalar type of a stored dtype; throws for dtypes torch cannot represent.
torch::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(torch::ScalarType type);

// A tensor sharing the mapped bytes (read-only: do not write into it). The store must outlive it,
// which the returned tensor guarantees by holding a reference to the shard.
torch::Tensor view_tensor(const StoredTensor& stored);
// An owned copy converted to `type` (e.g. float32 for computation).
torch::Tensor load_tensor(const StoredTensor& stored, torch::ScalarType type);

}  // namespace moeforge
