// The model's matrix products. Where the CPU lacks 16-bit matrix hardware (no AVX512-BF16/AMX),
// libtorch's bf16/fp16 GEMM is a scalar fallback (~10-15 GFLOP/s on 2 threads of an AVX2 EPYC,
// against ~100 in fp32, and ~50x slower still when its right operand is row-major). There, products
// of 16-bit tensors with enough rows are computed in fp32 from transient fp32 copies (bf16 storage,
// fp32 arithmetic, the result rounded once to the 16-bit dtype); smaller ones (decode steps) keep
// the 16-bit GEMM on its fast layout. Elsewhere these are torch's own calls.
#pragma once

#include <torch/types.h>

namespace moeforge::model {

// x [..., in], w [out, in], b [out] or undefined (no default: at::linear would be as good a match).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);

// out = a b (+ bias broadcast over rows), written into `out`; a [n, k], b [k, m] (any strides).
void gemm_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias = torch::Tensor());
// a b in a's dtype.
torch::Tensor gemm(const torch::Tensor& a, const torch::Tensor& b);

// The dtype to make a weight in that is decoded just in time (MXFP4 experts) for gemm/gemm_into
// with activations of `dtype`: fp32 where 16-bit products run in fp32 anyway (the decode skips a
// 16-bit copy that would be widened again; MXFP4 values are exact in both), else `dtype`. gemm and
// gemm_into take such an fp32 right operand beside a 16-bit left one and round the result once.
torch::ScalarType decoded_operand_dtype(torch::ScalarType dtype, const torch::Device& device);

// A GEMM's right operand b [K, N] as libtorch's 16-bit CPU GEMM reads it fastest (a transposed
// view): without the hardware a row-major b runs some 50x slower (bf16 256x512x2048: 0.3 vs 14.8
// GFLOP/s). The transposed copy moves K*N values. Elsewhere: b itself.
torch::Tensor fast_right_operand(const torch::Tensor& b);

}  // namespace moeforge::model
