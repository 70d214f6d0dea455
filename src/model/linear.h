// The model's linear layers: x W^T (+ b), with a backward that keeps libtorch's 16-bit CPU GEMM on
// its fast layout where the CPU lacks AVX512-BF16/AMX (see linear.cpp).
#pragma once

#include <torch/types.h>

namespace moeforge::model {

// x [..., in], w [out, in], b [out] or undefined (no default: at::linear would be as good a match).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);

// A GEMM's right operand b [K, N] as libtorch's 16-bit CPU GEMM reads it fastest: without
// AVX512-BF16/AMX that GEMM is ATen's fallback, which runs a row-major b some 50x slower than a
// transposed one (AVX2 EPYC, bf16, 256x512x2048: 0.3 vs 14.8 GFLOP/s; fp32 alike in both). The
// transposed copy moves K*N values, little next to the product's n*K*N. Elsewhere: b itself.
torch::Tensor fast_right_operand(const torch::Tensor& b);

}  // namespace moeforge::model
