// Just-in-time decoding of packed MXFP4 experts (StackedExperts::packed): one expert's projection
// at a time, in the run dtype, on the blocks' device. The values are exactly those of loading the
// experts dequantised (FP4 values times a power of two are exact in fp32, bf16 and fp16 ranges).
#pragma once

#include <torch/types.h>

#include <vector>

#include "model/moe_experts.h"

namespace moeforge::model {

// Expert e's input projection [2F, H] with the gate rows first (the file interleaves gate and up).
torch::Tensor decode_packed_in(const PackedExperts& packed, int64_t expert, torch::ScalarType dtype);
// Expert e's output projection [H, F].
torch::Tensor decode_packed_out(const PackedExperts& packed, int64_t expert, torch::ScalarType dtype);

// Holds experts `ids` of a packed stack dense in `dtype` (StackedExperts::unpacked, w_in/w_out
// rows), so they can be trained; the others stay packed. Experts already unpacked keep their values.
void unpack_experts(StackedExperts& experts, std::vector<int64_t> ids, torch::ScalarType dtype);

// Drops the resident pages of a packed stack's mapped blocks and scales (tensor/torch_bridge.h
// release_mapped_pages): after the load-time check, and after each use when streaming.
void release_packed_pages(const PackedExperts& packed);

// Whether every value the blocks encode is finite (scale bytes >= 253 can overflow float32; 255
// is E8M0's NaN). Reads in place; blocks [N, G, 16], scales [N, G] on CPU.
bool mxfp4_all_finite(const torch::Tensor& blocks, const torch::Tensor& scales);

}  // namespace moeforge::model
