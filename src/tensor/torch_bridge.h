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

// A tensor sharing the mapped bytes, zero-copy. The mapping is PROT_READ, so a write into it
// faults (SIGSEGV) instead of changing the file: never write into a view (see is_mapped_view).
// The tensor's storage holds a reference to the shard, so the mapping lives as long as any view.
torch::Tensor view_tensor(const StoredTensor& stored);
// Whether `t` (or the storage it views) is memory-mapped file bytes made by view_tensor.
bool is_mapped_view(const torch::Tensor& t);
// Drops a mapped view's resident pages from this process (madvise MADV_DONTNEED on its storage):
// RSS falls, and the next read faults them back from the page cache or the file (layer streaming,
// model/transformer.h). No-op for other tensors.
void release_mapped_pages(const torch::Tensor& t);
// Whether view_tensor's bytes are aligned for their element type (safetensors does not promise
// it; unaligned data is copied rather than handed to kernels that assume alignment).
bool view_is_aligned(const StoredTensor& stored);
// An owned copy converted to `type` (e.g. float32 for computation).
torch::Tensor load_tensor(const StoredTensor& stored, torch::ScalarType type);

}  // namespace moeforge
